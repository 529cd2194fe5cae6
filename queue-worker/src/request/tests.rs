//! Parsing deliveries: every deadline source, every reason a message is dead-lettered.

use super::*;
use lapin::types::{FieldTable, LongString};
use scale0_core::config::Config;

const CONFIG: &str = r#"
    [[deployments]]
    name = "chat"
    request_deadline = "60s"
    max_body_bytes = 10
    [[deployments.pools]]
    name = "a10g"
    max_instances = 2
    slots = 4
    price_per_hour_usd = 1.0
    boot_time = "30s"
"#;
const NOW: i64 = 1_800_000_000_000;
const TIMEOUT: i64 = 1_800_000;

fn spec() -> Deployment {
    Config::load(CONFIG).unwrap().deployments.remove(0)
}

fn props() -> BasicProperties {
    BasicProperties::default().with_reply_to("replies".into())
}

fn with_header(p: BasicProperties, value: AMQPValue) -> BasicProperties {
    let mut t = FieldTable::default();
    t.insert(headers::DEADLINE.into(), value);
    p.with_headers(t)
}

fn parse_ok(p: BasicProperties) -> Request {
    parse(&spec(), p, b"{}".to_vec(), false, NOW, TIMEOUT)
        .unwrap()
        .0
}

fn parse_err(p: BasicProperties, body: &[u8]) -> Invalid {
    parse(&spec(), p, body.to_vec(), false, NOW, TIMEOUT)
        .unwrap_err()
        .invalid
}

#[test]
fn deadlines() {
    // None given: the deployment's request_deadline.
    assert_eq!(parse_ok(props()).deadline_ms, NOW + 60_000);
    // The header, of any integer type or a decimal string (ms), or an AMQP
    // timestamp (seconds).
    for v in [
        AMQPValue::LongLongInt(NOW + 5_000),
        AMQPValue::LongUInt(((NOW + 5_000) / 1000) as u32),
        AMQPValue::Timestamp(((NOW + 5_000) / 1000) as u64),
        AMQPValue::LongString(LongString::from(format!("{}", NOW + 5_000))),
    ] {
        let expected = match v {
            AMQPValue::LongUInt(v) => i64::from(v),
            _ => NOW + 5_000,
        };
        assert_eq!(parse_ok(with_header(props(), v)).deadline_ms, expected);
    }
    // expiration counts from receipt, or from the producer's timestamp.
    let p = props().with_expiration("2000".into());
    assert_eq!(parse_ok(p.clone()).deadline_ms, NOW + 2_000);
    let stamped = p.clone().with_timestamp((NOW / 1000 - 1) as u64);
    assert_eq!(parse_ok(stamped).deadline_ms, NOW + 1_000);
    // Both: the earlier wins.
    let both = with_header(p, AMQPValue::LongLongInt(NOW + 500));
    assert_eq!(parse_ok(both).deadline_ms, NOW + 500);
    // A far deadline is clamped under the consumer timeout.
    let far = with_header(props(), AMQPValue::LongLongInt(NOW + 10 * TIMEOUT));
    assert_eq!(parse_ok(far).deadline_ms, NOW + TIMEOUT - 30_000);
}

/// A table of `depth` nested tables as it comes off the wire: `{"a": {"a": ... {}}}`
/// inside a header table, encoded without recursion.
fn nested_header(depth: usize) -> Vec<u8> {
    let mut table = 0u32.to_be_bytes().to_vec();
    for _ in 1..depth {
        let mut entry = vec![1, b'a', b'F'];
        entry.extend_from_slice(&table);
        table = (entry.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entry);
    }
    table
}

fn decode(wire: &[u8]) -> FieldTable {
    let (rest, table) = lapin::types::parsing::parse_field_table(wire).unwrap();
    assert!(rest.is_empty());
    table
}

#[test]
fn headers_nested_too_deep_are_read_without_recursing_and_refused() {
    // 2,000 deep (14 KB): the upstream parser overflowed lapin's I/O thread here.
    // The patched one stops at MAX_NESTING and keeps the rest as bytes.
    let deep = decode(&nested_header(2_000));
    let why = parse_err(props().with_headers(deep), b"{}");
    assert_eq!(why.kind, InvalidKind::BadHeaders);
    assert!(
        why.reason.contains("deeper than 64 levels"),
        "{}",
        why.reason
    );
    // Exactly at the limit: decoded whole, and accepted.
    let at_limit = decode(&nested_header(MAX_NESTING));
    assert!(undecodable(&at_limit).is_none());
    parse_ok(props().with_headers(at_limit));
    // Arrays count like tables.
    let mut array = vec![b'A', 0, 0, 0, 0];
    for _ in 0..2_000 {
        let mut outer = vec![b'A'];
        outer.extend_from_slice(&(array.len() as u32).to_be_bytes());
        outer.extend_from_slice(&array);
        array = outer;
    }
    let mut entry = vec![1, b'x'];
    entry.extend_from_slice(&array);
    let mut wire = (entry.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&entry);
    assert!(undecodable(&decode(&wire)).is_some());
}

#[test]
fn bytes_that_are_not_utf8_are_recognised() {
    // {"\xff\xfe": true}: a key RabbitMQ passes through, read lossily.
    let table = decode(&[0, 0, 0, 5, 2, 0xff, 0xfe, b't', 1]);
    let why = parse_err(props().with_headers(table), b"{}");
    assert!(
        why.reason.contains("header key is not UTF-8"),
        "{}",
        why.reason
    );
    let (_, id) = lapin::types::parsing::parse_short_string(&[2, 0xc3, 0x28][..]).unwrap();
    let why = parse_err(props().with_message_id(id), b"{}");
    assert!(
        why.reason.starts_with("message_id is not UTF-8"),
        "{}",
        why.reason
    );
}

#[test]
fn rejection_reasons_read_as_text() {
    let why = parse_err(
        with_header(props(), AMQPValue::LongString("garbage".into())),
        b"{}",
    );
    assert!(
        why.reason.ends_with(r#"got the text "garbage""#),
        "{}",
        why.reason
    );
    assert!(!why.reason.contains("LongString"), "{}", why.reason);
    for (value, words) in [
        (AMQPValue::Boolean(true), "the boolean true"),
        (
            AMQPValue::FieldTable(FieldTable::default()),
            "a table of 0 entries",
        ),
        (
            AMQPValue::LongString(vec![0xff, 0].into()),
            "2 bytes that are not UTF-8 text",
        ),
        (
            AMQPValue::Timestamp(u64::MAX),
            "the timestamp 18446744073709551615 (seconds since the epoch)",
        ),
    ] {
        assert_eq!(describe(&value), words);
    }
    let long = describe(&AMQPValue::LongString("y".repeat(1000).into()));
    assert!(long.len() < 100 && long.ends_with("(1000 bytes)"), "{long}");
}

#[test]
fn fields() {
    let p = props()
        .with_priority(200)
        .with_message_id("m-1".into())
        .with_correlation_id("c-1".into())
        .with_delivery_mode(2);
    let (r, envelope) = parse(&spec(), p, b"{}".to_vec(), false, NOW, TIMEOUT).unwrap();
    assert_eq!(r.priority, 9);
    assert_eq!(r.message_id.as_deref(), Some("m-1"));
    let to = envelope.reply;
    assert_eq!(to.correlation_id.as_ref().map(|c| c.as_str()), Some("c-1"));
    assert!(to.persistent);
    assert_eq!(to.queue.as_str(), "replies");
    assert!(!to.is_direct());
}

#[test]
fn unanswerable_messages_say_why() {
    let cases: Vec<(&str, BasicProperties, &[u8], InvalidKind)> = vec![
        (
            "no reply_to",
            BasicProperties::default(),
            b"{}",
            InvalidKind::NoReplyTo,
        ),
        (
            "empty reply_to",
            BasicProperties::default().with_reply_to("".into()),
            b"{}",
            InvalidKind::NoReplyTo,
        ),
        ("too large", props(), b"01234567890", InvalidKind::TooLarge),
        (
            "deadline not a number",
            with_header(props(), AMQPValue::LongString("tomorrow".into())),
            b"{}",
            InvalidKind::BadHeaders,
        ),
        (
            "deadline of a wrong type",
            with_header(props(), AMQPValue::Boolean(true)),
            b"{}",
            InvalidKind::BadHeaders,
        ),
        (
            "negative deadline",
            with_header(props(), AMQPValue::LongLongInt(-5)),
            b"{}",
            InvalidKind::BadHeaders,
        ),
        (
            "expiration not a number",
            props().with_expiration("soon".into()),
            b"{}",
            InvalidKind::BadHeaders,
        ),
    ];
    for (name, p, body, kind) in cases {
        let e = parse_err(p, body);
        assert_eq!(e.kind, kind, "{name}: {e:?}");
        assert!(!e.reason.is_empty());
    }
}
