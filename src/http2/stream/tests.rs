//! The state machine, table-driven: each row is a frame on a stream in some
//! state, and what RFC 9113 §5.1 says it means.

use bytes::Bytes;

use super::*;

fn headers(stream: u32, end: bool) -> Frame {
    Frame::Headers {
        stream,
        end,
        block: Bytes::new(),
    }
}

fn data(stream: u32, end: bool) -> Frame {
    Frame::Data {
        stream,
        data: Bytes::new(),
        end,
        flow: 0,
    }
}

fn window(stream: u32) -> Frame {
    Frame::WindowUpdate {
        stream,
        increment: 1,
    }
}

fn rst(stream: u32) -> Frame {
    Frame::Reset {
        stream,
        reason: Reason::CANCEL,
    }
}

fn reason(v: &Verdict) -> Option<Reason> {
    match v {
        Verdict::Reset(r) => Some(*r),
        Verdict::Fail(e) => Some(e.reason),
        _ => None,
    }
}

fn is_conn_error(v: &Verdict, r: Reason) -> bool {
    matches!(v, Verdict::Fail(e) if e.reason == r)
}

#[test]
fn idle_streams_take_only_headers() {
    let mut s = Streams::new(Role::Server);
    assert!(is_conn_error(
        &s.judge(&window(1), None),
        Reason::PROTOCOL_ERROR
    ));
    assert!(is_conn_error(
        &s.judge(&data(1, false), None),
        Reason::PROTOCOL_ERROR
    ));
    assert!(is_conn_error(
        &s.judge(&rst(1), None),
        Reason::PROTOCOL_ERROR
    ));
    assert_eq!(s.judge(&headers(1, false), None), Verdict::Open);
    assert_eq!(s.last_peer(), 1);
    // A client may not open an even stream.
    assert!(is_conn_error(
        &s.judge(&headers(2, false), None),
        Reason::PROTOCOL_ERROR
    ));
}

#[test]
fn a_lower_stream_id_than_one_opened_is_a_connection_error() {
    let mut s = Streams::new(Role::Server);
    assert_eq!(s.judge(&headers(5, true), None), Verdict::Open);
    // Stream 3 was never used: opening 5 closed it (§5.1.1).
    assert!(is_conn_error(
        &s.judge(&headers(3, true), None),
        Reason::PROTOCOL_ERROR
    ));
}

#[test]
fn half_closed_remote_refuses_data_and_headers_with_stream_closed() {
    let mut s = Streams::new(Role::Server);
    let mut st = Stream::new(65_535, 65_535);
    st.end_recv();
    assert_eq!(st.state, State::HalfClosedRemote);
    assert_eq!(
        s.judge(&data(1, false), Some(&st)),
        Verdict::Reset(Reason::STREAM_CLOSED)
    );
    assert_eq!(
        s.judge(&headers(1, true), Some(&st)),
        Verdict::Reset(Reason::STREAM_CLOSED)
    );
    assert_eq!(s.judge(&window(1), Some(&st)), Verdict::Deliver);
    assert_eq!(s.judge(&rst(1), Some(&st)), Verdict::Deliver);
}

#[test]
fn closed_streams_answer_by_how_they_closed() {
    let mut s = Streams::new(Role::Server);
    for id in [1, 3, 5, 7] {
        assert_eq!(s.judge(&headers(id, false), None), Verdict::Open);
    }
    // 1: we reset it; frames in flight are dropped.
    let mut ours = Stream::new(65_535, 65_535);
    ours.reset_sent = true;
    s.close(1, &ours);
    // 3: the client reset it.
    let mut theirs = Stream::new(65_535, 65_535);
    theirs.reset_received = true;
    s.close(3, &theirs);
    // 5: both sides ended it.
    let mut ended = Stream::new(65_535, 65_535);
    ended.end_recv();
    ended.end_send();
    assert_eq!(ended.state, State::Closed);
    s.close(5, &ended);

    assert_eq!(s.judge(&data(1, false), None), Verdict::Ignore);
    assert_eq!(s.judge(&headers(1, true), None), Verdict::Ignore);
    assert_eq!(
        s.judge(&data(3, false), None),
        Verdict::Reset(Reason::STREAM_CLOSED)
    );
    assert_eq!(
        s.judge(&headers(3, true), None),
        Verdict::Reset(Reason::STREAM_CLOSED)
    );
    assert!(is_conn_error(
        &s.judge(&data(5, false), None),
        Reason::STREAM_CLOSED
    ));
    assert!(is_conn_error(
        &s.judge(&headers(5, true), None),
        Reason::STREAM_CLOSED
    ));
    for id in [1, 3, 5] {
        assert_eq!(s.judge(&window(id), None), Verdict::Ignore, "stream {id}");
        assert_eq!(s.judge(&rst(id), None), Verdict::Ignore, "stream {id}");
    }
    // 7 left the record (never kept): HEADERS on it breaks the connection.
    assert_eq!(
        reason(&s.judge(&headers(7, true), None)),
        Some(Reason::PROTOCOL_ERROR)
    );
}

#[test]
fn the_client_role_judges_its_own_stream_ids() {
    let mut s = Streams::new(Role::Client);
    let id = s.next_local();
    assert_eq!(id, 1);
    // Stream 3 is not opened yet, stream 2 would be a push.
    assert!(is_conn_error(
        &s.judge(&headers(3, false), None),
        Reason::PROTOCOL_ERROR
    ));
    assert!(is_conn_error(
        &s.judge(&headers(2, false), None),
        Reason::PROTOCOL_ERROR
    ));
    let st = Stream::new(65_535, 65_535);
    assert_eq!(s.judge(&headers(1, false), Some(&st)), Verdict::Deliver);
}

#[test]
fn content_length_must_match_the_data() {
    let mut st = Stream::new(65_535, 65_535);
    st.expect_length(Some(10));
    assert_eq!(st.recv_data(4, 4, false), Ok(()));
    assert_eq!(
        st.recv_data(4, 4, true),
        Err(Reason::PROTOCOL_ERROR),
        "8 of 10"
    );
    let mut st = Stream::new(65_535, 65_535);
    st.expect_length(Some(3));
    assert_eq!(
        st.recv_data(4, 4, false),
        Err(Reason::PROTOCOL_ERROR),
        "past it"
    );
    let mut st = Stream::new(65_535, 65_535);
    st.expect_length(Some(3));
    assert_eq!(st.recv_end_without_data(), Err(Reason::PROTOCOL_ERROR));
    let mut st = Stream::new(65_535, 65_535);
    st.expect_length(Some(3));
    assert_eq!(st.recv_data(3, 3, false), Ok(()));
    assert_eq!(
        st.recv_end_without_data(),
        Ok(()),
        "trailers after all of it"
    );
}

#[test]
fn windows_never_pass_two_to_the_thirty_one() {
    let mut st = Stream::new(frame::MAX_WINDOW, 65_535);
    assert_eq!(st.grow_send(1), Err(Reason::FLOW_CONTROL_ERROR));
    assert_eq!(st.send_window, i64::from(frame::MAX_WINDOW));
    assert!(st.shift_send(1).is_err());
    assert!(st.shift_send(-10).is_ok());
    assert_eq!(st.send_window, i64::from(frame::MAX_WINDOW) - 10);
    let mut st = Stream::new(1, 4);
    assert_eq!(st.recv_data(5, 5, false), Err(Reason::FLOW_CONTROL_ERROR));
}

#[test]
fn ready_streams_take_turns_once_each() {
    let mut q = Ready::default();
    let mut a = Stream::new(1, 1);
    let mut b = Stream::new(1, 1);
    q.push(1, &mut a);
    q.push(1, &mut a);
    q.push(3, &mut b);
    assert_eq!(q.len(), 2);
    assert_eq!(q.pop(), Some(1));
    assert_eq!(q.pop(), Some(3));
    assert_eq!(q.pop(), None);
}

#[test]
fn the_closed_record_is_bounded() {
    let mut s = Streams::new(Role::Server);
    let st = Stream::new(1, 1);
    for i in 0..(CLOSED_KEPT as u32 + 10) {
        s.close(2 * i + 1, &st);
    }
    assert_eq!(s.closed.len(), CLOSED_KEPT);
}
