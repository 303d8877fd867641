//! The terminal table of a report: the four keys, aligned, then the weekly counts.

use super::*;

/// Control characters (an ANSI escape in a pipeline name) would drive the terminal.
pub(super) fn plain(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}

/// Rows padded into columns; `right[i]` right-aligns column i. Trailing spaces trimmed.
pub(super) fn align(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if right.get(i).copied().unwrap_or(false) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The report for a terminal: header, the four keys (figure, band, trend, what is
/// counted), failures, the weekly release-frequency table, the band sources.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Release frequency: {}, {}", plain(&report.environment), plain(pipeline_words(report)));
    let _ = writeln!(out, "Window: {} – {} (UTC)", date(report.since), date(report.until));
    let _ = writeln!(out, "Deployments: {}", count_words(report));
    out.push('\n');
    if report.deployments == 0 {
        let _ = writeln!(out, "{}", plain(&empty_sentence(report)));
        return out;
    }

    let views = keys(report);
    let mut rows = vec![vec!["KEY".to_string(), "FIGURE".into(), "BAND".into(), "TREND".into()]];
    for k in &views {
        rows.push(vec![
            k.name.into(),
            k.figure.clone(),
            k.band.map_or("-", band_word).into(),
            k.trend_text.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let lines = align(&rows, &[]);
    let _ = writeln!(out, "{}", lines[0]);
    for (line, k) in lines[1..].iter().zip(&views) {
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "    counts: {}", k.counted);
        if let Some(w) = &k.warning {
            let _ = writeln!(out, "    warning: {w}");
        }
    }

    if let Some(c) = report.change_failure.as_ref().filter(|c| !c.failures.is_empty()) {
        let _ = writeln!(out, "\nFailed deployments");
        let mut rows = vec![vec!["RUN".to_string(), "COMMIT".into(), "DEPLOYED (UTC)".into(), "REASON".into(), "RESTORED IN".into()]];
        for f in &c.failures {
            rows.push(vec![
                plain(&f.run_id),
                plain(short_sha(&f.commit)),
                f.deployed_at.format("%Y-%m-%d %H:%M").to_string(),
                reason_words(&f.reason).into(),
                restore_words(f.deployed_at, f.restored_at),
            ]);
        }
        for line in align(&rows, &[]) {
            let _ = writeln!(out, "{line}");
        }
    }

    if !report.weeks.is_empty() {
        let _ = writeln!(out, "\nRelease frequency per week");
        let names = pipelines(&report.weeks);
        let mut header = vec!["WEEK OF".to_string()];
        header.extend(names.iter().map(|n| plain(n)));
        header.extend(["TOTAL".to_string(), "FAILED".into()]);
        let mut rows = vec![header];
        for w in &report.weeks {
            let mut row = vec![w.start.to_string()];
            row.extend(names.iter().map(|n| count_for(w, n).to_string()));
            row.extend([w.deployments.to_string(), w.failed.to_string()]);
            rows.push(row);
        }
        let right: Vec<bool> = (0..names.len() + 3).map(|i| i > 0).collect();
        for line in align(&rows, &right) {
            let _ = writeln!(out, "{line}");
        }
    }

    if !report.sources.is_empty() {
        let _ = writeln!(out, "\nBand sources:");
        for s in &report.sources {
            let _ = writeln!(out, "  {}", plain(s));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// CSV
