//! The readers against the shared traces (skipped when absent) and against malformed
//! files, through the public API.

mod support;

use scale0_sim::trace::{ReadOptions, TraceData, TraceFormat, detect, parse};
use support::shared_trace;

fn read(name: &str) -> Option<(String, Vec<u8>)> {
    let p = shared_trace(name)?;
    Some((p.display().to_string(), std::fs::read(&p).ok()?))
}

#[test]
fn shared_traces_parse_to_their_documented_totals() {
    if let Some((name, bytes)) = read("azure-llm-code-2023.csv") {
        assert_eq!(detect(&bytes), Some(TraceFormat::AzureLlm));
        let t = parse(&bytes, &name, None, ReadOptions::default()).unwrap();
        // The README says 8,818; the file has 8,819 data rows (8,820 lines with the
        // header, the last without a newline).
        assert_eq!(t.request_count(), 8819);
        assert_eq!(
            t.start.unwrap().to_rfc3339(),
            "2023-11-16T18:17:03.979960+00:00"
        );
    }
    if let Some((name, bytes)) = read("azure-llm-code-2024-week-10s.csv") {
        assert_eq!(detect(&bytes), Some(TraceFormat::BinnedCsv));
        let t = parse(&bytes, &name, None, ReadOptions::default()).unwrap();
        let TraceData::Counts { bin, counts } = &t.data else {
            panic!("counts")
        };
        assert_eq!((*bin, counts.len()), (10_000_000, 60_481));
        assert_eq!(t.request_count(), 16_803_695);
    }
    if let Some((name, bytes)) = read("nasa-http-1995-per-second.txt") {
        assert_eq!(detect(&bytes), Some(TraceFormat::Counts));
        let t = parse(&bytes, &name, None, ReadOptions::default()).unwrap();
        let TraceData::Counts { counts, .. } = &t.data else {
            panic!("counts")
        };
        assert_eq!(counts.len(), 5_059_950);
        assert_eq!(t.request_count(), 3_461_610);
    }
}

#[test]
fn every_reader_names_file_and_line() {
    let bad: [(TraceFormat, &str, usize); 5] = [
        (
            TraceFormat::AzureLlm,
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,1,2\n2023-13-16 18:17:03,1,2\n",
            3,
        ),
        (
            TraceFormat::Mooncake,
            "{\"timestamp\": 1, \"input_length\": 1, \"output_length\": 1}\nnot json\n",
            2,
        ),
        (TraceFormat::Counts, "0 1 2\n3 4 5\n6 7 8.5\n", 3),
        (
            TraceFormat::BinnedCsv,
            "Time,TIMESTAMP\n2024-05-10 00:00:00,1\n2024-05-10 00:00:10,1\n2024-05-10 00:00:15,1\n",
            4,
        ),
        (
            TraceFormat::Csv,
            "t_seconds,input_tokens,output_tokens\n1,2,3\n2,x,3\n",
            3,
        ),
    ];
    for (format, text, line) in bad {
        let e = parse(
            text.as_bytes(),
            "traces/bad.txt",
            Some(format),
            ReadOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("traces/bad.txt:{line}: ")),
            "{format}: {e}"
        );
    }
}
