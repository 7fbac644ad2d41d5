//! Huffman coding of string literals (RFC 7541 §5.2 and Appendix B).
//!
//! Owns the code table, the encoder (bit packing, plus the encoded length so callers can choose
//! the shorter form first) and the decoder. The decoder is a state machine fed four bits at a
//! time: the states are the 256 internal nodes of the code tree, and a 256 × 16 transition table
//! built at compile time from the code table says, for each state and nibble, which state comes
//! next, whether a symbol was completed, and whether the input may end there. That costs two
//! look-ups per input byte instead of a tree step per bit.

use super::HpackError;

/// (code, bit length) of each byte value, then of EOS (index 256); codes are right-aligned.
/// This is the published table of RFC 7541 Appendix B.
#[rustfmt::skip]
const CODES: [(u32, u8); 257] = [
    (0x00001ff8, 13), (0x007fffd8, 23), (0x0fffffe2, 28), (0x0fffffe3, 28), // 0
    (0x0fffffe4, 28), (0x0fffffe5, 28), (0x0fffffe6, 28), (0x0fffffe7, 28), // 4
    (0x0fffffe8, 28), (0x00ffffea, 24), (0x3ffffffc, 30), (0x0fffffe9, 28), // 8
    (0x0fffffea, 28), (0x3ffffffd, 30), (0x0fffffeb, 28), (0x0fffffec, 28), // 12
    (0x0fffffed, 28), (0x0fffffee, 28), (0x0fffffef, 28), (0x0ffffff0, 28), // 16
    (0x0ffffff1, 28), (0x0ffffff2, 28), (0x3ffffffe, 30), (0x0ffffff3, 28), // 20
    (0x0ffffff4, 28), (0x0ffffff5, 28), (0x0ffffff6, 28), (0x0ffffff7, 28), // 24
    (0x0ffffff8, 28), (0x0ffffff9, 28), (0x0ffffffa, 28), (0x0ffffffb, 28), // 28
    (0x00000014,  6), (0x000003f8, 10), (0x000003f9, 10), (0x00000ffa, 12), // 32
    (0x00001ff9, 13), (0x00000015,  6), (0x000000f8,  8), (0x000007fa, 11), // 36
    (0x000003fa, 10), (0x000003fb, 10), (0x000000f9,  8), (0x000007fb, 11), // 40
    (0x000000fa,  8), (0x00000016,  6), (0x00000017,  6), (0x00000018,  6), // 44
    (0x00000000,  5), (0x00000001,  5), (0x00000002,  5), (0x00000019,  6), // 48
    (0x0000001a,  6), (0x0000001b,  6), (0x0000001c,  6), (0x0000001d,  6), // 52
    (0x0000001e,  6), (0x0000001f,  6), (0x0000005c,  7), (0x000000fb,  8), // 56
    (0x00007ffc, 15), (0x00000020,  6), (0x00000ffb, 12), (0x000003fc, 10), // 60
    (0x00001ffa, 13), (0x00000021,  6), (0x0000005d,  7), (0x0000005e,  7), // 64
    (0x0000005f,  7), (0x00000060,  7), (0x00000061,  7), (0x00000062,  7), // 68
    (0x00000063,  7), (0x00000064,  7), (0x00000065,  7), (0x00000066,  7), // 72
    (0x00000067,  7), (0x00000068,  7), (0x00000069,  7), (0x0000006a,  7), // 76
    (0x0000006b,  7), (0x0000006c,  7), (0x0000006d,  7), (0x0000006e,  7), // 80
    (0x0000006f,  7), (0x00000070,  7), (0x00000071,  7), (0x00000072,  7), // 84
    (0x000000fc,  8), (0x00000073,  7), (0x000000fd,  8), (0x00001ffb, 13), // 88
    (0x0007fff0, 19), (0x00001ffc, 13), (0x00003ffc, 14), (0x00000022,  6), // 92
    (0x00007ffd, 15), (0x00000003,  5), (0x00000023,  6), (0x00000004,  5), // 96
    (0x00000024,  6), (0x00000005,  5), (0x00000025,  6), (0x00000026,  6), // 100
    (0x00000027,  6), (0x00000006,  5), (0x00000074,  7), (0x00000075,  7), // 104
    (0x00000028,  6), (0x00000029,  6), (0x0000002a,  6), (0x00000007,  5), // 108
    (0x0000002b,  6), (0x00000076,  7), (0x0000002c,  6), (0x00000008,  5), // 112
    (0x00000009,  5), (0x0000002d,  6), (0x00000077,  7), (0x00000078,  7), // 116
    (0x00000079,  7), (0x0000007a,  7), (0x0000007b,  7), (0x00007ffe, 15), // 120
    (0x000007fc, 11), (0x00003ffd, 14), (0x00001ffd, 13), (0x0ffffffc, 28), // 124
    (0x000fffe6, 20), (0x003fffd2, 22), (0x000fffe7, 20), (0x000fffe8, 20), // 128
    (0x003fffd3, 22), (0x003fffd4, 22), (0x003fffd5, 22), (0x007fffd9, 23), // 132
    (0x003fffd6, 22), (0x007fffda, 23), (0x007fffdb, 23), (0x007fffdc, 23), // 136
    (0x007fffdd, 23), (0x007fffde, 23), (0x00ffffeb, 24), (0x007fffdf, 23), // 140
    (0x00ffffec, 24), (0x00ffffed, 24), (0x003fffd7, 22), (0x007fffe0, 23), // 144
    (0x00ffffee, 24), (0x007fffe1, 23), (0x007fffe2, 23), (0x007fffe3, 23), // 148
    (0x007fffe4, 23), (0x001fffdc, 21), (0x003fffd8, 22), (0x007fffe5, 23), // 152
    (0x003fffd9, 22), (0x007fffe6, 23), (0x007fffe7, 23), (0x00ffffef, 24), // 156
    (0x003fffda, 22), (0x001fffdd, 21), (0x000fffe9, 20), (0x003fffdb, 22), // 160
    (0x003fffdc, 22), (0x007fffe8, 23), (0x007fffe9, 23), (0x001fffde, 21), // 164
    (0x007fffea, 23), (0x003fffdd, 22), (0x003fffde, 22), (0x00fffff0, 24), // 168
    (0x001fffdf, 21), (0x003fffdf, 22), (0x007fffeb, 23), (0x007fffec, 23), // 172
    (0x001fffe0, 21), (0x001fffe1, 21), (0x003fffe0, 22), (0x001fffe2, 21), // 176
    (0x007fffed, 23), (0x003fffe1, 22), (0x007fffee, 23), (0x007fffef, 23), // 180
    (0x000fffea, 20), (0x003fffe2, 22), (0x003fffe3, 22), (0x003fffe4, 22), // 184
    (0x007ffff0, 23), (0x003fffe5, 22), (0x003fffe6, 22), (0x007ffff1, 23), // 188
    (0x03ffffe0, 26), (0x03ffffe1, 26), (0x000fffeb, 20), (0x0007fff1, 19), // 192
    (0x003fffe7, 22), (0x007ffff2, 23), (0x003fffe8, 22), (0x01ffffec, 25), // 196
    (0x03ffffe2, 26), (0x03ffffe3, 26), (0x03ffffe4, 26), (0x07ffffde, 27), // 200
    (0x07ffffdf, 27), (0x03ffffe5, 26), (0x00fffff1, 24), (0x01ffffed, 25), // 204
    (0x0007fff2, 19), (0x001fffe3, 21), (0x03ffffe6, 26), (0x07ffffe0, 27), // 208
    (0x07ffffe1, 27), (0x03ffffe7, 26), (0x07ffffe2, 27), (0x00fffff2, 24), // 212
    (0x001fffe4, 21), (0x001fffe5, 21), (0x03ffffe8, 26), (0x03ffffe9, 26), // 216
    (0x0ffffffd, 28), (0x07ffffe3, 27), (0x07ffffe4, 27), (0x07ffffe5, 27), // 220
    (0x000fffec, 20), (0x00fffff3, 24), (0x000fffed, 20), (0x001fffe6, 21), // 224
    (0x003fffe9, 22), (0x001fffe7, 21), (0x001fffe8, 21), (0x007ffff3, 23), // 228
    (0x003fffea, 22), (0x003fffeb, 22), (0x01ffffee, 25), (0x01ffffef, 25), // 232
    (0x00fffff4, 24), (0x00fffff5, 24), (0x03ffffea, 26), (0x007ffff4, 23), // 236
    (0x03ffffeb, 26), (0x07ffffe6, 27), (0x03ffffec, 26), (0x03ffffed, 26), // 240
    (0x07ffffe7, 27), (0x07ffffe8, 27), (0x07ffffe9, 27), (0x07ffffea, 27), // 244
    (0x07ffffeb, 27), (0x0ffffffe, 28), (0x07ffffec, 27), (0x07ffffed, 27), // 248
    (0x07ffffee, 27), (0x07ffffef, 27), (0x07fffff0, 27), (0x03ffffee, 26), // 252
    (0x3fffffff, 30), // 256
];

/// The end-of-string symbol: it may only appear as padding, never decoded (§5.2).
const EOS: u16 = 256;

/// Length in bytes of `src` once Huffman-coded, padding included.
pub(super) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman coding of `src` to `dst`.
pub(super) fn encode(src: &[u8], dst: &mut Vec<u8>) {
    // Pending bits sit at the low end of `acc`. After whole bytes are flushed at most 7 remain,
    // and a code has at most 30 bits, so the live bits never exceed 64; older bits shifted out
    // of the top were already written.
    let mut acc: u64 = 0;
    let mut pending: u32 = 0;
    for &byte in src {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        pending += u32::from(len);
        while pending >= 8 {
            pending -= 8;
            dst.push((acc >> pending) as u8);
        }
    }
    if pending > 0 {
        // Pad with the high bits of EOS, which are all ones.
        let pad = 8 - pending;
        dst.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}

/// Appends the decoding of the Huffman-coded `src` to `dst`.
pub(super) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HpackError> {
    // The shortest code has 5 bits, which bounds the output.
    dst.reserve(src.len().saturating_mul(8) / 5);
    let mut state = 0u8;
    let mut accept = true;
    for &byte in src {
        for nibble in [byte >> 4, byte & 0x0f] {
            let step = DECODE[usize::from(state)][usize::from(nibble & 0x0f)];
            if step.flags & FAIL != 0 {
                return Err(HpackError::InvalidHuffman);
            }
            if step.flags & EMIT != 0 {
                dst.push(step.symbol);
            }
            state = step.next;
            accept = step.flags & ACCEPT != 0;
        }
    }
    if accept {
        Ok(())
    } else {
        Err(HpackError::InvalidHuffman)
    }
}

/// One transition of the decoder: where four more input bits lead from a state.
#[derive(Clone, Copy)]
struct Step {
    /// The state (tree node) reached.
    next: u8,
    /// The byte completed on the way, when `flags` has `EMIT`.
    symbol: u8,
    flags: u8,
}

/// A symbol was completed during this nibble (never two: codes have at least 5 bits).
const EMIT: u8 = 1;
/// The input may end after this nibble: the bits since the last symbol are at most 7 ones,
/// which is valid padding (§5.2).
const ACCEPT: u8 = 2;
/// The nibble completes EOS, which a decoder must reject.
const FAIL: u8 = 4;

static DECODE: [[Step; 16]; 256] = build_decoder();

/// Marks a tree child as a leaf holding a symbol; other non-zero children are node numbers.
/// Zero means "no child": the root, node 0, is nobody's child.
const LEAF: u16 = 0x8000;

/// Builds the code tree from `CODES`, then the transition table from the tree. A complete
/// prefix code with 257 symbols has exactly 256 internal nodes, so the states fit in a `u8`;
/// a table that did not fit would fail to compile (index out of bounds in const evaluation).
const fn build_decoder() -> [[Step; 16]; 256] {
    let mut children = [[0u16; 2]; 256];
    // Depth of each node, and whether the path to it is all ones: a node reached by at most 7
    // one bits after the last symbol is a place the input may end.
    let mut depth = [0u8; 256];
    let mut all_ones = [true; 256];
    let mut nodes = 1;
    let mut symbol = 0;
    while symbol < CODES.len() {
        let (code, len) = CODES[symbol];
        let mut node = 0;
        let mut bit_pos = len - 1;
        while bit_pos > 0 {
            let bit = ((code >> bit_pos) & 1) as usize;
            if children[node][bit] == 0 {
                children[node][bit] = nodes as u16;
                depth[nodes] = depth[node] + 1;
                all_ones[nodes] = all_ones[node] && bit == 1;
                nodes += 1;
            }
            node = children[node][bit] as usize;
            bit_pos -= 1;
        }
        children[node][(code & 1) as usize] = LEAF | symbol as u16;
        symbol += 1;
    }

    let mut table = [[Step {
        next: 0,
        symbol: 0,
        flags: 0,
    }; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step = Step {
                next: 0,
                symbol: 0,
                flags: 0,
            };
            let mut bit_pos = 4;
            while bit_pos > 0 {
                bit_pos -= 1;
                let child = children[node][(nibble >> bit_pos) & 1];
                if child == LEAF | EOS || child == 0 {
                    step.flags = FAIL;
                    break;
                } else if child & LEAF != 0 {
                    step.symbol = (child & !LEAF) as u8;
                    step.flags |= EMIT;
                    node = 0;
                } else {
                    node = child as usize;
                }
            }
            if step.flags & FAIL == 0 {
                step.next = node as u8;
                if depth[node] <= 7 && all_ones[node] {
                    step.flags |= ACCEPT;
                }
            }
            table[state][nibble] = step;
            nibble += 1;
        }
        state += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::super::tests::hex;
    use super::*;

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn code_table_is_a_complete_prefix_code() {
        // Kraft's sum is exactly 1, and no code is wider than its length.
        let sum: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
        assert_eq!(sum, 1 << 30);
        assert!(CODES
            .iter()
            .all(|&(code, len)| u64::from(code) < 1u64 << len));
        assert_eq!(CODES[usize::from(EOS)], (0x3fff_ffff, 30));
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 and C.4.3.
        let cases = [
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ];
        for (plain, coded) in cases {
            let mut out = Vec::new();
            encode(plain.as_bytes(), &mut out);
            assert_eq!(out, hex(coded), "{plain}");
            assert_eq!(encoded_len(plain.as_bytes()), out.len());
            assert_eq!(decoded(&out).unwrap(), plain.as_bytes());
        }
    }

    #[test]
    fn round_trips_every_byte_value() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        encode(&all, &mut out);
        assert_eq!(out.len(), encoded_len(&all));
        assert_eq!(decoded(&out).unwrap(), all);
        for byte in 0..=255u8 {
            for len in 1..4 {
                let plain = vec![byte; len];
                let mut out = Vec::new();
                encode(&plain, &mut out);
                assert_eq!(decoded(&out).unwrap(), plain, "byte {byte} x{len}");
            }
        }
    }

    #[test]
    fn rejects_bad_padding_and_eos() {
        // 'a' is 00011: padded with ones that is 0x1f; with zeros, invalid.
        assert_eq!(decoded(&[0x1f]).unwrap(), b"a");
        assert_eq!(decoded(&[0x18]), Err(HpackError::InvalidHuffman));
        assert_eq!(decoded(&[0x1e]), Err(HpackError::InvalidHuffman));
        // A whole byte of ones after a symbol is 8 bits of padding.
        assert_eq!(decoded(&[0x1f, 0xff]), Err(HpackError::InvalidHuffman));
        assert_eq!(decoded(&[0xff]), Err(HpackError::InvalidHuffman));
        // EOS itself (30 ones), then padding.
        assert_eq!(
            decoded(&[0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::InvalidHuffman)
        );
        // 'a' then EOS: 00011 + 30 ones + 5 ones of padding.
        assert_eq!(
            decoded(&[0x1f, 0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::InvalidHuffman)
        );
        // The empty string is valid.
        assert_eq!(decoded(&[]).unwrap(), b"");
    }
}
