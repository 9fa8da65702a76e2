//! `palisade audit summary FILE`: the refusals of a JSON-lines audit log per hour, by reason,
//! route, subject and client address, as plain-text tables.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use clap::Args;
use palisade::audit::{AuditEvent, EventKind, Outcome as AuditOutcome};

use crate::table::{Table, count, printable};
use crate::{Failure, Outcome};

#[derive(Debug, Args)]
pub(crate) struct SummaryArgs {
    /// The JSON-lines audit log (a file sink's file).
    file: PathBuf,
    /// The most frequent values shown per hour in each table; the rest are counted together.
    #[arg(long, default_value_t = 10, value_name = "N")]
    top: usize,
}

/// What a refusal is counted by, in the order the tables are printed.
const DIMENSIONS: [&str; 4] = ["reason", "route", "subject", "client address"];

/// The counts of one log.
#[derive(Debug, Default)]
struct Summary {
    events: u64,
    refused: u64,
    unreadable: u64,
    losses: u64,
    lost: u64,
    /// Per dimension: (hour, value) → refusals.
    counts: [BTreeMap<(String, String), u64>; 4],
}

impl Summary {
    /// Counts one line of the log.
    fn add_line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let Ok(event) = serde_json::from_str::<AuditEvent>(line) else {
            self.unreadable += 1;
            return;
        };
        self.events += 1;
        if event.kind == EventKind::Loss {
            self.losses += 1;
            self.lost += event.dropped.unwrap_or(0);
            return;
        }
        let Some(AuditOutcome::Refused { layer, reason, .. }) = &event.outcome else {
            return;
        };
        self.refused += 1;
        // `2026-11-23T01:02:03.45Z` → `2026-11-23T01:00`.
        let hour = event
            .time
            .get(..13)
            .map_or_else(|| "(no time)".to_owned(), |h| format!("{h}:00"));
        let method = event.method.as_deref().unwrap_or("-");
        let values = [
            format!("{reason} ({layer})"),
            match &event.route {
                Some(route) => format!("{method} {route}"),
                None => format!("{method} (no declared route)"),
            },
            event
                .principal
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), |p| p.subject.clone()),
            event.client_ip.unwrap_or_else(|| "(unknown)".to_owned()),
        ];
        for (counts, value) in self.counts.iter_mut().zip(values) {
            *counts.entry((hour.clone(), value)).or_default() += 1;
        }
    }

    /// The summary's text: a line of totals, then one table per dimension.
    fn render(&self, name: &str, top: usize) -> String {
        let mut out = format!(
            "{}: {}, {} refused",
            printable(name),
            count(self.events, "event", "events"),
            self.refused
        );
        if self.losses > 0 {
            out += &format!(
                ", {} lost (in {})",
                count(self.lost, "event", "events"),
                count(self.losses, "loss report", "loss reports")
            );
        }
        if self.unreadable > 0 {
            let lines = count(self.unreadable, "line that is", "lines that are");
            out += &format!(", {lines} not an audit event");
        }
        out.push('\n');
        for (dimension, counts) in DIMENSIONS.iter().zip(&self.counts) {
            let table = table(dimension, counts, top);
            if !table.is_empty() {
                out += &format!("\nrefusals by {dimension}\n{}", table.render());
            }
        }
        out
    }
}

/// One dimension's table: per hour, the `top` most frequent values and the rest together.
fn table(dimension: &str, counts: &BTreeMap<(String, String), u64>, top: usize) -> Table {
    let mut table = Table::new(&["hour", dimension, "refusals"], &[false, false, true]);
    let mut by_hour: BTreeMap<&str, Vec<(&str, u64)>> = BTreeMap::new();
    for ((hour, value), n) in counts {
        by_hour.entry(hour).or_default().push((value, *n));
    }
    for (hour, mut values) in by_hour {
        values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (value, n) in values.iter().take(top) {
            table.row(&[hour, value, &n.to_string()]);
        }
        let rest = &values[top.min(values.len())..];
        if !rest.is_empty() {
            let n: u64 = rest.iter().map(|(_, n)| n).sum();
            let others = format!("({})", count(len(rest.len()), "other", "others"));
            table.row(&[hour, &others, &n.to_string()]);
        }
    }
    table
}

/// A length as a count.
fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

pub(crate) fn run(args: &SummaryArgs) -> Outcome {
    let name = args.file.display().to_string();
    let file = File::open(&args.file).map_err(|e| Failure::Error(format!("{name}: {e}")))?;
    let mut summary = Summary::default();
    for line in BufReader::new(file).lines() {
        match line {
            Ok(line) => summary.add_line(&line),
            // A line that is not UTF-8 is not an event; anything else stops the summary.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => summary.unreadable += 1,
            Err(e) => return Err(Failure::Error(format!("{name}: {e}"))),
        }
    }
    print!("{}", summary.render(&name, args.top));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(seq: u32, time: &str, reason: &str, subject: Option<&str>, ip: &str) -> String {
        let principal = subject.map_or(String::new(), |s| {
            format!(r#""principal":{{"subject":"{s}","credential":"api_key"}},"#)
        });
        format!(
            r#"{{"version":1,"kind":"request","seq":{seq},"time":"{time}",{principal}"client_ip":"{ip}","method":"GET","route":"/orders/{{id}}","path":"/orders/1","status":403,"outcome":{{"decision":"refused","layer":"authz","reason":"{reason}"}},"latency_us":5}}"#
        )
    }

    #[test]
    fn refusals_are_counted_per_hour_and_the_rest_grouped() {
        let mut s = Summary::default();
        s.add_line(&refusal(
            1,
            "2026-05-01T10:01:00Z",
            "missing_role",
            Some("bob"),
            "192.0.2.1",
        ));
        s.add_line(&refusal(
            2,
            "2026-05-01T10:59:59Z",
            "missing_role",
            Some("bob"),
            "192.0.2.2",
        ));
        s.add_line(&refusal(
            3,
            "2026-05-01T10:30:00Z",
            "missing_scope",
            Some("eve"),
            "192.0.2.1",
        ));
        s.add_line(&refusal(
            4,
            "2026-05-01T11:00:00Z",
            "missing_role",
            None,
            "192.0.2.3",
        ));
        s.add_line(r#"{"version":1,"kind":"request","seq":5,"time":"2026-05-01T11:00:01Z","outcome":{"decision":"allowed"}}"#);
        s.add_line(
            r#"{"version":1,"kind":"loss","seq":6,"time":"2026-05-01T11:00:02Z","dropped":7}"#,
        );
        s.add_line("not json");
        assert_eq!((s.events, s.refused, s.unreadable, s.lost), (6, 4, 1, 7));
        let text = s.render("audit.jsonl", 1);
        assert!(text.starts_with("audit.jsonl: 6 events, 4 refused, 7 events lost (in 1 loss report), 1 line that is not an audit event\n"), "{text}");
        assert!(
            text.contains("2026-05-01T10:00  missing_role (authz)         2\n"),
            "{text}"
        );
        assert!(
            text.contains("2026-05-01T10:00  (1 other)                    1\n"),
            "{text}"
        );
        assert!(
            text.contains("2026-05-01T11:00  (none)            1\n"),
            "{text}"
        );
        assert!(text.contains("refusals by client address\n"), "{text}");
    }
}
