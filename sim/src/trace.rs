//! Trace readers: the request-arrival traces in `../shared/traces/` and files like them.
//!
//! A trace is either a list of requests (with token counts when the file has them) or a
//! series of counts per fixed-width bin. Five formats:
//!
//! | format | shape | example |
//! | --- | --- | --- |
//! | `azure-llm` | CSV, header `TIMESTAMP,ContextTokens,GeneratedTokens`, `YYYY-MM-DD HH:MM:SS[.fffffff]` UTC | Azure LLM inference trace 2023 |
//! | `mooncake` | JSON lines with `timestamp` (ms), `input_length`, `output_length` | Mooncake traces |
//! | `counts` | whitespace-separated integers, one per bin (1 s unless the scenario says otherwise) | NASA-HTTP per second |
//! | `binned-csv` | CSV, header `Time,<name>`, rows `YYYY-MM-DD HH:MM:SS,count` at a fixed width | Azure LLM 2024 week per 10 s |
//! | `csv` | `t_seconds[,input_tokens,output_tokens]`, optional header | anything else |
//!
//! Readers parse bytes, not files, so they stay pure; the CLI reads the file and passes
//! its name for messages. A malformed line is an error naming the file and the line
//! (and, for the one-line count files, the column), never a panic and never a skipped
//! line: a benchmark that silently dropped data would report numbers of a trace nobody
//! has. The count reader works on bytes because the NASA file is 10 MB on one line.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Microseconds: the simulator's unit of time.
pub type Micros = i64;

pub const MICROS_PER_SEC: i64 = 1_000_000;

/// The trace formats this module reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TraceFormat {
    AzureLlm,
    Mooncake,
    Counts,
    BinnedCsv,
    Csv,
}

impl TraceFormat {
    pub const ALL: [TraceFormat; 5] = [
        TraceFormat::AzureLlm,
        TraceFormat::Mooncake,
        TraceFormat::Counts,
        TraceFormat::BinnedCsv,
        TraceFormat::Csv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::AzureLlm => "azure-llm",
            TraceFormat::Mooncake => "mooncake",
            TraceFormat::Counts => "counts",
            TraceFormat::BinnedCsv => "binned-csv",
            TraceFormat::Csv => "csv",
        }
    }
}

impl fmt::Display for TraceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TraceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = TraceFormat::ALL.iter().map(|f| f.name()).collect();
                format!("unknown trace format `{s}` (one of {})", names.join(", "))
            })
    }
}

/// One request of a request-level trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRequest {
    /// Offset from the trace start.
    pub at: Micros,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TraceData {
    /// Sorted by arrival time.
    Requests {
        requests: Vec<TraceRequest>,
        /// False when the file carries no token counts (plain `t_seconds` CSV).
        has_tokens: bool,
    },
    /// Arrivals counted per bin of `bin` microseconds, from the trace start.
    Counts { bin: Micros, counts: Vec<u32> },
}

/// A parsed trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The file it came from, for messages.
    pub source: String,
    pub format: TraceFormat,
    /// The wall-clock instant of offset 0, when the file says (Azure timestamps).
    pub start: Option<DateTime<Utc>>,
    pub data: TraceData,
}

impl Trace {
    /// Requests in the whole trace.
    pub fn request_count(&self) -> u64 {
        match &self.data {
            TraceData::Requests { requests, .. } => requests.len() as u64,
            TraceData::Counts { counts, .. } => counts.iter().map(|&c| u64::from(c)).sum(),
        }
    }

    /// Offset of the end of the trace: the end of the last bin, or the last arrival.
    pub fn span(&self) -> Micros {
        match &self.data {
            TraceData::Requests { requests, .. } => requests.last().map_or(0, |r| r.at),
            TraceData::Counts { bin, counts } => *bin * counts.len() as i64,
        }
    }
}

/// A malformed trace: the file, the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TraceError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Options a scenario may give the reader.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Bin width for `counts` (default 1 s) and `binned-csv` (default: from the first
    /// two rows).
    pub bin: Option<Micros>,
}

/// Guess the format from the first non-empty line.
pub fn detect(bytes: &[u8]) -> Option<TraceFormat> {
    let text = std::str::from_utf8(&bytes[..bytes.len().min(4096)])
        .ok()
        .or_else(|| {
            // A cut in the middle of a UTF-8 sequence: retry on a shorter prefix.
            (1..4).find_map(|cut| {
                std::str::from_utf8(&bytes[..bytes.len().min(4096).saturating_sub(cut)]).ok()
            })
        })?;
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let lower = first.to_ascii_lowercase();
    if first.starts_with('{') {
        Some(TraceFormat::Mooncake)
    } else if lower.contains("contexttokens") || lower.contains("generatedtokens") {
        Some(TraceFormat::AzureLlm)
    } else if lower.starts_with("time,")
        || first
            .split(',')
            .next()
            .is_some_and(|f| parse_datetime(f.trim()).is_some())
    {
        Some(TraceFormat::BinnedCsv)
    } else if first.contains(',') || lower.starts_with("t_seconds") {
        Some(TraceFormat::Csv)
    } else if first
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_whitespace())
    {
        // Integers only: counts, unless the sample shows decimals (arrival seconds). A
        // file of one whole number of seconds per line is ambiguous; say `--format csv`.
        if text.contains('.') {
            Some(TraceFormat::Csv)
        } else {
            Some(TraceFormat::Counts)
        }
    } else if first.parse::<f64>().is_ok() {
        Some(TraceFormat::Csv)
    } else {
        None
    }
}

/// Parse `bytes` (the content of `source`) as `format`, or as the detected format.
pub fn parse(
    bytes: &[u8],
    source: &str,
    format: Option<TraceFormat>,
    options: ReadOptions,
) -> Result<Trace, TraceError> {
    let format = match format {
        Some(f) => f,
        None => detect(bytes).ok_or_else(|| TraceError {
            file: source.to_string(),
            line: 1,
            message: "cannot tell the trace format from the first line; pass --format".into(),
        })?,
    };
    let err = |line: usize, message: String| TraceError {
        file: source.to_string(),
        line,
        message,
    };
    let (start, data) = match format {
        TraceFormat::Counts => (
            None,
            parse_counts(bytes, options.bin.unwrap_or(MICROS_PER_SEC))
                .map_err(|(l, m)| err(l, m))?,
        ),
        other => {
            let text = std::str::from_utf8(bytes).map_err(|e| {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                err(line, "not valid UTF-8".into())
            })?;
            match other {
                TraceFormat::AzureLlm => parse_azure(text),
                TraceFormat::Mooncake => parse_mooncake(text),
                TraceFormat::BinnedCsv => parse_binned(text, options.bin),
                TraceFormat::Csv => parse_csv(text),
                TraceFormat::Counts => unreachable!("handled above"),
            }
            .map_err(|(l, m)| err(l, m))?
        }
    };
    Ok(Trace {
        source: source.to_string(),
        format,
        start,
        data,
    })
}

type LineResult<T> = Result<T, (usize, String)>;

/// Whitespace-separated non-negative integers, parsed byte by byte.
fn parse_counts(bytes: &[u8], bin: Micros) -> LineResult<TraceData> {
    if bin <= 0 {
        return Err((1, "bin width must be positive".into()));
    }
    let mut counts = Vec::with_capacity(bytes.len() / 2 + 1);
    let mut line = 1usize;
    let mut line_start = 0usize;
    let mut value: u64 = 0;
    let mut in_number = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                value = value * 10 + u64::from(b - b'0');
                if value > u64::from(u32::MAX) {
                    return Err((
                        line,
                        format!("column {}: count too large", i - line_start + 1),
                    ));
                }
                in_number = true;
            }
            b' ' | b'\t' | b'\r' | b'\n' => {
                if in_number {
                    counts.push(value as u32);
                    value = 0;
                    in_number = false;
                }
                if b == b'\n' {
                    line += 1;
                    line_start = i + 1;
                }
            }
            _ => {
                let shown = if b.is_ascii_graphic() {
                    format!("`{}`", b as char)
                } else {
                    format!("byte 0x{b:02x}")
                };
                return Err((
                    line,
                    format!(
                        "column {}: {shown} where a count (a non-negative integer) was expected",
                        i - line_start + 1
                    ),
                ));
            }
        }
    }
    if in_number {
        counts.push(value as u32);
    }
    if counts.is_empty() {
        return Err((1, "no counts in the file".into()));
    }
    Ok(TraceData::Counts { bin, counts })
}

/// `YYYY-MM-DD HH:MM:SS[.f{1,9}]` (a `T` separator and a trailing `Z` are accepted),
/// as microseconds since the Unix epoch.
fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let b = b.strip_suffix(b"Z").unwrap_or(b);
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    let time = date.and_hms_opt(h, mi, sec)?;
    let mut micros = time.and_utc().timestamp() * MICROS_PER_SEC;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 || b.len() > 29 {
            return None;
        }
        let frac = &b[20..];
        let mut value: i64 = 0;
        for &c in frac {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(c - b'0');
        }
        // Scale to microseconds: truncate digits past the sixth (100 ns steps in Azure).
        let digits = frac.len() as u32;
        micros += if digits >= 6 {
            value / 10i64.pow(digits - 6)
        } else {
            value * 10i64.pow(6 - digits)
        };
    }
    Some(micros)
}

fn datetime_of(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
}

fn parse_u32(field: &str, what: &str) -> Result<u32, String> {
    field
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("{what} `{}` is not a non-negative integer", field.trim()))
}

/// Sort by arrival (stable, so equal times keep file order) and make offsets relative
/// to the first arrival or to `origin`.
fn finish_requests(mut rows: Vec<TraceRequest>, origin: i64) -> Vec<TraceRequest> {
    rows.sort_by_key(|r| r.at);
    for r in &mut rows {
        r.at -= origin;
    }
    rows
}

fn parse_azure(text: &str) -> LineResult<(Option<DateTime<Utc>>, TraceData)> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or((1, "empty file".to_string()))?;
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |name: &str| cols.iter().position(|c| c == name);
    let (Some(ts), Some(ctx), Some(gen_col)) = (
        find("timestamp"),
        find("contexttokens"),
        find("generatedtokens"),
    ) else {
        return Err((
            1,
            format!("header `{header}` lacks TIMESTAMP, ContextTokens and GeneratedTokens"),
        ));
    };
    let mut rows = Vec::new();
    for (i, line) in lines {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != cols.len() {
            return Err((
                n,
                format!("{} fields, expected {}", fields.len(), cols.len()),
            ));
        }
        let at = parse_datetime(fields[ts].trim()).ok_or_else(|| {
            (
                n,
                format!(
                    "timestamp `{}` is not YYYY-MM-DD HH:MM:SS[.fffffff]",
                    fields[ts].trim()
                ),
            )
        })?;
        let input_tokens = parse_u32(fields[ctx], "ContextTokens").map_err(|m| (n, m))?;
        let output_tokens = parse_u32(fields[gen_col], "GeneratedTokens").map_err(|m| (n, m))?;
        rows.push(TraceRequest {
            at,
            input_tokens,
            output_tokens,
        });
    }
    let origin = rows
        .iter()
        .map(|r| r.at)
        .min()
        .ok_or((1, "no requests in the file".to_string()))?;
    Ok((
        datetime_of(origin),
        TraceData::Requests {
            requests: finish_requests(rows, origin),
            has_tokens: true,
        },
    ))
}

#[derive(Deserialize)]
struct MooncakeLine {
    timestamp: f64,
    input_length: u32,
    output_length: u32,
}

fn parse_mooncake(text: &str) -> LineResult<(Option<DateTime<Utc>>, TraceData)> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: MooncakeLine = serde_json::from_str(line)
            .map_err(|e| (i + 1, format!("not a Mooncake record: {e}")))?;
        if !(row.timestamp.is_finite() && row.timestamp >= 0.0) {
            return Err((
                i + 1,
                format!(
                    "timestamp {} must be a non-negative number of milliseconds",
                    row.timestamp
                ),
            ));
        }
        rows.push(TraceRequest {
            at: (row.timestamp * 1000.0).round() as i64,
            input_tokens: row.input_length,
            output_tokens: row.output_length,
        });
    }
    if rows.is_empty() {
        return Err((1, "no requests in the file".into()));
    }
    // Mooncake timestamps are already offsets (ms from the trace start).
    Ok((
        None,
        TraceData::Requests {
            requests: finish_requests(rows, 0),
            has_tokens: true,
        },
    ))
}

fn parse_csv(text: &str) -> LineResult<(Option<DateTime<Utc>>, TraceData)> {
    let mut rows = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if rows.is_empty() && width.is_none() && fields[0].parse::<f64>().is_err() {
            // A header line.
            width = Some(fields.len());
            continue;
        }
        if !(fields.len() == 1 || fields.len() == 3) {
            return Err((
                n,
                format!(
                    "{} fields; expected t_seconds or t_seconds,input_tokens,output_tokens",
                    fields.len()
                ),
            ));
        }
        if let Some(w) = width
            && w != fields.len()
            && !rows.is_empty()
        {
            return Err((n, format!("{} fields, expected {w}", fields.len())));
        }
        width = Some(fields.len());
        let t: f64 = fields[0]
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| {
                (
                    n,
                    format!("t_seconds `{}` is not a non-negative number", fields[0]),
                )
            })?;
        let (input_tokens, output_tokens) = if fields.len() == 3 {
            (
                parse_u32(fields[1], "input_tokens").map_err(|m| (n, m))?,
                parse_u32(fields[2], "output_tokens").map_err(|m| (n, m))?,
            )
        } else {
            (0, 0)
        };
        rows.push(TraceRequest {
            at: (t * MICROS_PER_SEC as f64).round() as i64,
            input_tokens,
            output_tokens,
        });
    }
    if rows.is_empty() {
        return Err((1, "no requests in the file".into()));
    }
    Ok((
        None,
        TraceData::Requests {
            requests: finish_requests(rows, 0),
            has_tokens: width == Some(3),
        },
    ))
}

fn parse_binned(text: &str, bin: Option<Micros>) -> LineResult<(Option<DateTime<Utc>>, TraceData)> {
    let mut rows: Vec<(usize, i64, u32)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((time, count)) = line.split_once(',') else {
            return Err((n, "expected `time,count`".into()));
        };
        match parse_datetime(time.trim()) {
            Some(at) => {
                if count.contains(',') {
                    return Err((n, "expected two fields, `time,count`".into()));
                }
                let count = parse_u32(count, "count").map_err(|m| (n, m))?;
                rows.push((n, at, count));
            }
            None if rows.is_empty() && n == 1 => {} // header
            None => {
                return Err((
                    n,
                    format!("time `{}` is not YYYY-MM-DD HH:MM:SS", time.trim()),
                ));
            }
        }
    }
    let Some(&(_, origin, _)) = rows.first() else {
        return Err((1, "no rows in the file".into()));
    };
    let bin = match bin {
        Some(b) if b > 0 => b,
        Some(_) => return Err((1, "bin width must be positive".into())),
        None => match rows.get(1) {
            Some(&(_, at, _)) if at > origin => at - origin,
            Some(&(n, _, _)) => return Err((n, "time does not increase".into())),
            None => {
                return Err((
                    1,
                    "one row: cannot tell the bin width; set trace.bin".into(),
                ));
            }
        },
    };
    let mut counts: Vec<u32> = Vec::with_capacity(rows.len());
    for &(n, at, count) in &rows {
        let offset = at - origin;
        if offset % bin != 0 {
            return Err((n, format!("time is not on the {} µs bin grid", bin)));
        }
        let index = (offset / bin) as usize;
        if index < counts.len() {
            return Err((n, "time does not increase".into()));
        }
        // A missing bin had no requests.
        counts.resize(index, 0);
        counts.push(count);
    }
    Ok((datetime_of(origin), TraceData::Counts { bin, counts }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, format: Option<TraceFormat>) -> Result<Trace, TraceError> {
        parse(text.as_bytes(), "t.txt", format, ReadOptions::default())
    }

    #[test]
    fn detects_each_format() {
        let cases = [
            (
                "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n",
                TraceFormat::AzureLlm,
            ),
            (
                "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2}\n",
                TraceFormat::Mooncake,
            ),
            ("1 0 0 3 2\n", TraceFormat::Counts),
            (
                "Time,TIMESTAMP\n2024-05-10 00:00:00,146\n",
                TraceFormat::BinnedCsv,
            ),
            (
                "t_seconds,input_tokens,output_tokens\n0.5,10,2\n",
                TraceFormat::Csv,
            ),
            ("0.5\n1.25\n", TraceFormat::Csv),
            ("0\n0.1\n2\n", TraceFormat::Csv),
        ];
        for (text, format) in cases {
            assert_eq!(detect(text.as_bytes()), Some(format), "{text}");
        }
        assert_eq!(detect(b"hello world"), None);
    }

    #[test]
    fn azure_timestamps_keep_sub_second_precision() {
        let t = p(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:03.9799600,4808,10\n",
            None,
        )
        .unwrap();
        assert_eq!(
            t.start.unwrap().to_rfc3339(),
            "2023-11-16T18:17:03.979960+00:00"
        );
        let TraceData::Requests {
            requests,
            has_tokens,
        } = t.data
        else {
            panic!()
        };
        assert!(has_tokens);
        assert_eq!(
            requests[0],
            TraceRequest {
                at: 0,
                input_tokens: 4808,
                output_tokens: 10
            }
        );
        assert_eq!(requests[1].at, 52_000);
    }

    #[test]
    fn counts_and_bins() {
        let t = p("1 0\t2\n\n3   0 ", None).unwrap();
        assert_eq!(
            t.data,
            TraceData::Counts {
                bin: MICROS_PER_SEC,
                counts: vec![1, 0, 2, 3, 0]
            }
        );
        assert_eq!(t.request_count(), 6);
        let b = p(
            "Time,TIMESTAMP\n2024-05-10 00:00:00,5\n2024-05-10 00:00:10,7\n2024-05-10 00:00:30,1\n",
            None,
        )
        .unwrap();
        assert_eq!(
            b.data,
            TraceData::Counts {
                bin: 10 * MICROS_PER_SEC,
                counts: vec![5, 7, 0, 1]
            }
        );
        assert_eq!(b.start.unwrap().to_rfc3339(), "2024-05-10T00:00:00+00:00");
    }

    #[test]
    fn mooncake_and_csv() {
        let m = p("{\"timestamp\": 1500, \"input_length\": 5, \"output_length\": 2, \"hash_ids\": [1]}\n{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}", None).unwrap();
        let TraceData::Requests { requests, .. } = m.data else {
            panic!()
        };
        assert_eq!(
            requests.iter().map(|r| r.at).collect::<Vec<_>>(),
            [0, 1_500_000]
        );
        let c = p("t_seconds\n0.5\n2\n", None).unwrap();
        let TraceData::Requests {
            requests,
            has_tokens,
        } = c.data
        else {
            panic!()
        };
        assert!(!has_tokens);
        assert_eq!(
            requests.iter().map(|r| r.at).collect::<Vec<_>>(),
            [500_000, 2_000_000]
        );
    }

    /// Every reader rejects a malformed line by file and line number.
    #[test]
    fn malformed_lines_name_file_and_line() {
        let cases: [(&str, TraceFormat, usize, &str); 12] = [
            (
                "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,1,2\n2023-11-16 18:17:0x,1,2\n",
                TraceFormat::AzureLlm,
                3,
                "timestamp",
            ),
            (
                "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,1\n",
                TraceFormat::AzureLlm,
                2,
                "fields",
            ),
            (
                "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,-1,2\n",
                TraceFormat::AzureLlm,
                2,
                "ContextTokens",
            ),
            ("Date,Tokens\n", TraceFormat::AzureLlm, 1, "header"),
            (
                "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n{\"timestamp\": 1, \"input_length\": \"x\"}\n",
                TraceFormat::Mooncake,
                2,
                "Mooncake",
            ),
            (
                "{\"timestamp\": -5, \"input_length\": 1, \"output_length\": 1}\n",
                TraceFormat::Mooncake,
                1,
                "non-negative",
            ),
            ("1 2 3\n4 x 6\n", TraceFormat::Counts, 2, "column 3"),
            ("1 2 -3\n", TraceFormat::Counts, 1, "`-`"),
            (
                "Time,TIMESTAMP\n2024-05-10 00:00:00,5\n2024-05-10 00:00:10,seven\n",
                TraceFormat::BinnedCsv,
                3,
                "count",
            ),
            (
                "Time,TIMESTAMP\n2024-05-10 00:00:10,5\n2024-05-10 00:00:00,7\n",
                TraceFormat::BinnedCsv,
                3,
                "increase",
            ),
            ("0.5,1,2\n1.0,1\n", TraceFormat::Csv, 2, "fields"),
            ("0.5\nsoon\n", TraceFormat::Csv, 2, "t_seconds"),
        ];
        for (text, format, line, needle) in cases {
            let e = p(text, Some(format)).expect_err(text);
            assert_eq!((e.file.as_str(), e.line), ("t.txt", line), "{format}: {e}");
            assert!(
                e.message.contains(needle),
                "{format}: `{e}` lacks `{needle}`"
            );
            assert!(e.to_string().starts_with(&format!("t.txt:{line}: ")));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 1u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| (crate::rng::splitmix64(&mut seed) & 0xff) as u8)
                .collect();
            for f in TraceFormat::ALL {
                let _ = parse(&bytes, "g", Some(f), ReadOptions::default());
            }
            let _ = parse(&bytes, "g", None, ReadOptions::default());
        }
        // Huge numbers and odd bytes in a count file.
        assert!(p("99999999999999999999", Some(TraceFormat::Counts)).is_err());
        assert!(
            parse(
                &[b'1', b' ', 0xff],
                "g",
                Some(TraceFormat::Counts),
                ReadOptions::default()
            )
            .is_err()
        );
    }
}
