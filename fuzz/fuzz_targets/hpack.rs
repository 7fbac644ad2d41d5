//! Header blocks → HPACK `Decoder`: never a panic, connection errors end the
//! connection. Every block that decodes is re-encoded with gantry's `Encoder` and
//! decoded again by a second decoder: the same fields come back, sensitive ones
//! still sensitive, with both table pairs kept in step across blocks.
#![no_main]

use arbitrary::{Result, Unstructured};
use gantry::http2::hpack::{Decoder, Encoder, Header};
use libfuzzer_sys::fuzz_target;

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let max_table = *u.choose(&[0, 64, 256, 4096, 65_536])?;
    let max_list = *u.choose(&[0, 100, 4096, 1 << 20])?;
    let mut decoder = Decoder::new(max_table);
    let mut encoder = Encoder::new();
    let mut mirror = Decoder::new(4096);
    while !u.is_empty() {
        if u.ratio(1, 16)? {
            // The peer's SETTINGS_HEADER_TABLE_SIZE changes between blocks.
            let size = *u.choose(&[0, 100, 4096, 1 << 30])?;
            encoder.set_max_table_size(size);
        }
        let len = u.arbitrary_len::<u8>()?;
        let block = u.bytes(len)?;
        let mut fields = Vec::new();
        match decoder.decode(block, max_list, |h| fields.push(h)) {
            Ok(decoded) if !decoded.oversized => {}
            Ok(_) => continue,
            Err(e) if e.is_connection_error() => return Ok(()),
            Err(_) => continue,
        }
        let (used, max) = decoder.table_size();
        assert!(
            used <= max && max <= max_table.max(4096),
            "table {used}/{max}"
        );

        let mut again = Vec::new();
        encoder.start_block(&mut again);
        for h in &fields {
            match h {
                Header::Pseudo(p, v) => encoder.encode_pseudo(*p, v, &mut again),
                Header::Field(n, v) => encoder.encode_field(n, v, &mut again),
            }
        }
        let mut back = Vec::new();
        if let Err(e) = mirror.decode(&again, usize::MAX, |h| back.push(h)) {
            panic!("re-encoded block does not decode ({e}): {fields:?}");
        }
        assert_eq!(back, fields, "re-encoded block decodes differently");
        for (a, b) in fields.iter().zip(&back) {
            if let (Header::Field(_, a), Header::Field(_, b)) = (a, b) {
                assert!(!a.is_sensitive() || b.is_sensitive(), "sensitivity lost");
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
