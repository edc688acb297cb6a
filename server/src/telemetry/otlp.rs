//! The part of OpenTelemetry's metrics protobuf (`opentelemetry.proto.metrics.v1.MetricsData`)
//! that KIP-714 clients push: gauges and sums of number data points with their attributes.
//! Histograms, summaries and exemplars are skipped (counted, not read). A reader of the wire
//! format by hand: a few message types do not earn a protobuf code generator in the build.

use std::fmt;

/// A data point's attributes as (key, value as text).
pub type Attributes = Vec<(String, String)>;

/// One number a client reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub metric: String,
    pub kind: Kind,
    /// The data point's attributes (`node.id`, `topic`, ...), values as text.
    pub attributes: Attributes,
    pub value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// A sum that only grows and is reported cumulatively: a Prometheus counter.
    Counter,
    /// Any other sum (delta or not monotonic): exposed as a gauge of the last value.
    Sum,
}

/// What a payload held: its points and how many data points of other kinds were skipped.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub points: Vec<Point>,
    pub skipped: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(&'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed OpenTelemetry metrics: {}", self.0)
    }
}

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const I32: u8 = 5;

/// A field of a protobuf message.
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or(Malformed("truncated varint"))?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.buf.len() {
            return Err(Malformed("field longer than its message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next (field number, value), or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, Malformed> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            I64 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| Malformed("length"))?;
                Value::Bytes(self.take(n)?)
            }
            I32 => {
                self.take(4)?;
                Value::Fixed32
            }
            _ => return Err(Malformed("unknown wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

/// Calls `f` with every field of `msg`.
fn fields<'a>(
    msg: &'a [u8],
    mut f: impl FnMut(u64, Value<'a>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut r = Reader { buf: msg };
    while let Some((n, v)) = r.field()? {
        f(n, v)?;
    }
    Ok(())
}

fn text(b: &[u8]) -> Result<String, Malformed> {
    String::from_utf8(b.to_vec()).map_err(|_| Malformed("a string is not UTF-8"))
}

/// Decodes `MetricsData` (the payload of PushTelemetry, decompressed).
pub fn decode(payload: &[u8]) -> Result<Decoded, Malformed> {
    let mut out = Decoded::default();
    // MetricsData.resource_metrics = 1 -> ResourceMetrics.scope_metrics = 2 -> ScopeMetrics.metrics = 2
    fields(payload, |n, v| match (n, v) {
        (1, Value::Bytes(resource)) => fields(resource, |n, v| match (n, v) {
            (2, Value::Bytes(scope)) => fields(scope, |n, v| match (n, v) {
                (2, Value::Bytes(metric)) => read_metric(metric, &mut out),
                _ => Ok(()),
            }),
            _ => Ok(()),
        }),
        _ => Ok(()),
    })?;
    Ok(out)
}

fn read_metric(msg: &[u8], out: &mut Decoded) -> Result<(), Malformed> {
    let mut name = String::new();
    let mut data: Vec<(Kind, &[u8])> = Vec::new();
    fields(msg, |n, v| {
        match (n, v) {
            (1, Value::Bytes(b)) => name = text(b)?,
            (5, Value::Bytes(b)) => data.push((Kind::Gauge, b)),
            (7, Value::Bytes(b)) => data.push((sum_kind(b)?, b)),
            (9..=11, Value::Bytes(b)) => out.skipped += count_points(b)?,
            _ => {}
        }
        Ok(())
    })?;
    if name.is_empty() && !data.is_empty() {
        return Err(Malformed("a metric without a name"));
    }
    for (kind, body) in data {
        // Gauge.data_points = 1, Sum.data_points = 1
        fields(body, |n, v| match (n, v) {
            (1, Value::Bytes(point)) => {
                if let Some((attributes, value)) = read_point(point)? {
                    out.points.push(Point { metric: name.clone(), kind, attributes, value });
                }
                Ok(())
            }
            _ => Ok(()),
        })?;
    }
    Ok(())
}

/// A Sum's kind: a counter when monotonic and cumulative (aggregation temporality 2).
fn sum_kind(body: &[u8]) -> Result<Kind, Malformed> {
    let (mut temporality, mut monotonic) = (0, false);
    fields(body, |n, v| {
        match (n, v) {
            (2, Value::Varint(t)) => temporality = t,
            (3, Value::Varint(m)) => monotonic = m != 0,
            _ => {}
        }
        Ok(())
    })?;
    Ok(if monotonic && temporality == 2 { Kind::Counter } else { Kind::Sum })
}

fn count_points(body: &[u8]) -> Result<usize, Malformed> {
    let mut n = 0;
    fields(body, |f, _| {
        n += usize::from(f == 1);
        Ok(())
    })?;
    Ok(n)
}

/// A NumberDataPoint: its attributes and value (`None` without one).
fn read_point(msg: &[u8]) -> Result<Option<(Attributes, f64)>, Malformed> {
    let mut attributes = Vec::new();
    let mut value = None;
    fields(msg, |n, v| {
        match (n, v) {
            (7, Value::Bytes(kv)) => attributes.push(read_key_value(kv)?),
            (4, Value::Fixed64(bits)) => value = Some(f64::from_bits(bits)),
            (6, Value::Fixed64(bits)) => value = Some(bits as i64 as f64),
            _ => {}
        }
        Ok(())
    })?;
    Ok(value.map(|v| (attributes, v)))
}

/// A KeyValue with its AnyValue as text (strings, booleans, integers, doubles).
fn read_key_value(msg: &[u8]) -> Result<(String, String), Malformed> {
    let (mut key, mut value) = (String::new(), String::new());
    fields(msg, |n, v| {
        match (n, v) {
            (1, Value::Bytes(b)) => key = text(b)?,
            (2, Value::Bytes(any)) => {
                fields(any, |n, v| {
                    value = match (n, v) {
                        (1, Value::Bytes(b)) => text(b)?,
                        (2, Value::Varint(b)) => (b != 0).to_string(),
                        (3, Value::Varint(i)) => (i as i64).to_string(),
                        (4, Value::Fixed64(bits)) => f64::from_bits(bits).to_string(),
                        _ => return Ok(()),
                    };
                    Ok(())
                })?;
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok((key, value))
}

/// Encoding, for tests: the same subset, written as a client would.
#[cfg(any(test, feature = "fuzzing"))]
pub mod encode {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(out: &mut Vec<u8>, n: u64, body: &[u8]) {
        varint(out, n << 3 | 2);
        varint(out, body.len() as u64);
        out.extend_from_slice(body);
    }

    fn key_value(k: &str, v: &str) -> Vec<u8> {
        let mut any = Vec::new();
        len_field(&mut any, 1, v.as_bytes());
        let mut kv = Vec::new();
        len_field(&mut kv, 1, k.as_bytes());
        len_field(&mut kv, 2, &any);
        kv
    }

    /// MetricsData with one gauge and one cumulative monotonic sum, each with one point.
    pub fn metrics(gauge: (&str, f64, &[(&str, &str)]), counter: (&str, i64)) -> Vec<u8> {
        let mut point = Vec::new();
        for (k, v) in gauge.2 {
            len_field(&mut point, 7, &key_value(k, v));
        }
        varint(&mut point, 4 << 3 | 1);
        point.extend_from_slice(&gauge.1.to_bits().to_le_bytes());
        let mut g = Vec::new();
        len_field(&mut g, 1, &point);
        let mut m1 = Vec::new();
        len_field(&mut m1, 1, gauge.0.as_bytes());
        len_field(&mut m1, 5, &g);

        let mut point = Vec::new();
        varint(&mut point, 6 << 3 | 1);
        point.extend_from_slice(&counter.1.to_le_bytes());
        let mut s = Vec::new();
        len_field(&mut s, 1, &point);
        varint(&mut s, 2 << 3);
        varint(&mut s, 2); // cumulative
        varint(&mut s, 3 << 3);
        varint(&mut s, 1); // monotonic
        let mut m2 = Vec::new();
        len_field(&mut m2, 1, counter.0.as_bytes());
        len_field(&mut m2, 7, &s);

        let mut scope = Vec::new();
        len_field(&mut scope, 2, &m1);
        len_field(&mut scope, 2, &m2);
        let mut resource = Vec::new();
        len_field(&mut resource, 2, &scope);
        let mut data = Vec::new();
        len_field(&mut data, 1, &resource);
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_and_counters_with_attributes() {
        let payload = encode::metrics(
            ("org.apache.kafka.producer.node.request.latency.avg", 2.5, &[("node.id", "1")]),
            ("org.apache.kafka.producer.connection.creation.total", 3),
        );
        let d = decode(&payload).unwrap();
        assert_eq!(d.skipped, 0);
        assert_eq!(
            d.points,
            vec![
                Point {
                    metric: "org.apache.kafka.producer.node.request.latency.avg".into(),
                    kind: Kind::Gauge,
                    attributes: vec![("node.id".into(), "1".into())],
                    value: 2.5,
                },
                Point {
                    metric: "org.apache.kafka.producer.connection.creation.total".into(),
                    kind: Kind::Counter,
                    attributes: vec![],
                    value: 3.0,
                },
            ]
        );
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let payload = encode::metrics(("m", 1.0, &[("k", "v")]), ("c", 1));
        for cut in 0..payload.len() {
            let _ = decode(&payload[..cut]); // any result but a panic
        }
        assert!(decode(&[0x0a, 0x05, 0x01]).is_err(), "length past the end");
        assert!(decode(&[0x0b]).is_err(), "wire type 3 (groups) is not used");
        assert_eq!(decode(&[]).unwrap(), Decoded::default());
    }
}
