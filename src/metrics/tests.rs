//! Tests for `metrics`.
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use super::*;

/// One rendered sample: name, labels (sorted), value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Renders a fresh recorder after [`register_all`] and then `record`.
fn render_after(record: impl FnOnce()) -> String {
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        register_all();
        record();
    });
    handle.render()
}

/// A parser for the exposition lines the exporter writes (`name{k="v",…} value`). Our
/// label values contain no quotes or commas, which keeps it this small.
fn samples(text: &str) -> Vec<Sample> {
    let parse = |line: &str| {
        let (series, value) = line.rsplit_once(' ')?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect::<Option<_>>()?;
        let value = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().ok()?
        };
        Some(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    };
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse(l).unwrap_or_else(|| panic!("unparsable line {l:?}")))
        .collect()
}

/// The metric family a sample line belongs to (`x_bucket` belongs to histogram `x`).
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| {
            name.strip_suffix(s)
                .filter(|base| histogram_names().contains(base))
        })
        .unwrap_or(name)
}

fn histogram_names() -> [&'static str; 2] {
    [REQUEST_DURATION_SECONDS, DIRECT_WAIT_SECONDS]
}

/// `# TYPE` lines: name → type.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
        .collect()
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[test]
fn enum_discriminants_follow_all_order() {
    // The key tables are indexed with `as usize`; this is what makes that correct.
    assert!(Lane::ALL.iter().enumerate().all(|(i, &x)| x as usize == i));
    assert!(
        Reason::ALL
            .iter()
            .enumerate()
            .all(|(i, &x)| x as usize == i)
    );
    assert!(Mode::ALL.iter().enumerate().all(|(i, &x)| x as usize == i));
    assert!(
        ErrorKind::ALL
            .iter()
            .enumerate()
            .all(|(i, &x)| x as usize == i)
    );
    assert!(
        LossState::ALL
            .iter()
            .enumerate()
            .all(|(i, &x)| x as usize == i)
    );
    assert!(
        Direction::ALL
            .iter()
            .enumerate()
            .all(|(i, &x)| x as usize == i)
    );
}

/// A pg-boss claim match, for the lock-path counter.
fn claim() -> LockMatch {
    LockMatch {
        preset: PresetId::PgBoss,
        kind: Kind::Claim,
        retry: crate::route::presets::Retry::Unsafe,
        signal: crate::route::presets::Signal::Text,
        statement: "fetchNextJob()",
    }
}

#[test]
fn lock_path_series_are_each_presets_kinds_and_custom_unknown() {
    let series: Vec<(PresetId, Kind)> = lock_path_series().collect();
    for preset in PresetId::BUILT_IN {
        for rule in preset.preset().rules {
            assert!(
                series.contains(&(preset, rule.kind)),
                "{preset:?} {:?}",
                rule.kind
            );
        }
    }
    assert!(series.contains(&(PresetId::Custom, Kind::Unknown)));
    assert!(
        !series.contains(&(PresetId::Que, Kind::Claim)),
        "Que routes no claim"
    );
    let text = render_after(|| {});
    assert_eq!(
        value(
            &text,
            LOCK_PATH_TOTAL,
            &[("preset", "custom"), ("kind", "unknown")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            LOCK_PATH_TOTAL,
            &[("preset", "river"), ("kind", "elect")]
        ),
        Some(0.0)
    );
}

#[test]
fn startup_every_metric_renders_at_zero() {
    let text = render_after(|| {});
    let all = samples(&text);
    for name in ALL_NAMES {
        let of_name: Vec<_> = all.iter().filter(|s| family(&s.name) == name).collect();
        assert!(!of_name.is_empty(), "{name} missing from:\n{text}");
        let expected = if name == BUILD_INFO { 1.0 } else { 0.0 };
        for s in of_name {
            assert_eq!(s.value, expected, "{} {:?}", s.name, s.labels);
        }
    }
}

#[test]
fn startup_series_counts_match_closed_label_sets() {
    let text = render_after(|| {});
    let all = samples(&text);
    let count = |name: &str| all.iter().filter(|s| s.name == name).count();
    let table = [
        (CLIENT_CONNECTIONS, 1),
        (CLIENT_CONNECTIONS_TOTAL, 1),
        (ROUTED_TOTAL, Lane::ALL.len() * Reason::ALL.len()),
        (UPSTREAM_CONNECTIONS, Lane::ALL.len()),
        (UPSTREAM_CONNECTS_TOTAL, Lane::ALL.len() * 2),
        (UPSTREAM_LOST_TOTAL, Lane::ALL.len() * LossState::ALL.len()),
        ("lockroute_request_duration_seconds_count", Lane::ALL.len()),
        ("lockroute_direct_wait_seconds_count", 1),
        (ERRORS_TOTAL, ErrorKind::ALL.len()),
        (BYTES_TOTAL, Lane::ALL.len() * Direction::ALL.len()),
        (MODE, Mode::ALL.len()),
        (BUILD_INFO, 1),
        (DRAINING, 1),
        (LOCK_PATH_TOTAL, lock_path_series().count()),
        (LOCK_PATH_RETRIES_TOTAL, lock_path_series().count()),
        (
            pins::PINS_TOTAL,
            crate::route::effects::PinReason::ALL.len(),
        ),
        (
            pins::PINNED_CLIENTS,
            crate::route::effects::PinReason::ALL.len(),
        ),
        (
            pins::PIN_REFUSED_TOTAL,
            crate::route::effects::PinReason::ALL.len(),
        ),
    ];
    for (name, expected) in table {
        assert_eq!(count(name), expected, "{name}");
    }
}

#[test]
fn histograms_render_buckets_with_configured_le() {
    let text = render_after(|| {});
    let table: [(&str, &[f64]); 2] = [
        (REQUEST_DURATION_SECONDS, &REQUEST_DURATION_BUCKETS),
        (DIRECT_WAIT_SECONDS, &DIRECT_WAIT_BUCKETS),
    ];
    for (name, buckets) in table {
        assert_eq!(
            types(&text).get(name).map(String::as_str),
            Some("histogram"),
            "{name}"
        );
        let bucket_name = format!("{name}_bucket");
        let mut les: Vec<f64> = samples(&text)
            .into_iter()
            .filter(|s| s.name == bucket_name)
            .filter_map(|s| s.labels.get("le").and_then(|le| le.parse().ok()))
            .filter(|le: &f64| le.is_finite())
            .collect();
        les.sort_by(f64::total_cmp);
        les.dedup();
        assert_eq!(les, buckets, "{name}");
        let inf: Vec<_> = samples(&text)
            .into_iter()
            .filter(|s| s.name == bucket_name && s.labels["le"] == "+Inf")
            .collect();
        assert!(
            !inf.is_empty() && inf.iter().all(|s| s.value == 0.0),
            "{inf:?}"
        );
    }
    assert!(
        !text.contains("quantile"),
        "a histogram rendered as a summary:\n{text}"
    );
}

#[test]
fn names_have_prefix_and_counters_end_in_total() {
    let text = render_after(|| {});
    let types = types(&text);
    assert_eq!(types.len(), ALL_NAMES.len(), "{types:?}");
    for (name, kind) in &types {
        assert!(name.starts_with("lockroute_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
    for s in samples(&text) {
        assert!(s.name.starts_with("lockroute_"), "{}", s.name);
    }
}

#[test]
fn label_values_come_from_closed_sets() {
    let strs = |v: &[&'static str]| v.to_vec();
    let allowed: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("lane", Lane::ALL.map(Lane::as_str).to_vec()),
        (
            "reason",
            Reason::ALL
                .map(Reason::as_str)
                .into_iter()
                .chain(crate::route::effects::PinReason::ALL.map(|r| r.as_str()))
                .collect(),
        ),
        ("result", strs(&CONNECT_RESULTS)),
        ("state", strs(&["idle", "in_flight"])),
        (
            "kind",
            ErrorKind::ALL
                .map(ErrorKind::as_str)
                .into_iter()
                .chain(Kind::ALL.map(Kind::as_str))
                .collect(),
        ),
        ("preset", PresetId::ALL.map(PresetId::as_str).to_vec()),
        ("direction", Direction::ALL.map(Direction::as_str).to_vec()),
        ("mode", strs(&["split", "passthrough", "shadow"])),
        ("version", strs(&[env!("CARGO_PKG_VERSION")])),
    ]);
    let text = render_after(|| {
        routed(Lane::Direct, Reason::Pattern);
        request_duration(Lane::Direct, Duration::from_millis(3));
    });
    for s in samples(&text) {
        for (k, v) in &s.labels {
            if k == "le" {
                continue;
            }
            let values = allowed
                .get(k.as_str())
                .unwrap_or_else(|| panic!("label {k} on {}", s.name));
            assert!(values.contains(&v.as_str()), "{}: {k}={v}", s.name);
        }
    }
}

#[test]
fn set_mode_leaves_exactly_one_mode_at_one() {
    for active in Mode::ALL {
        let text = render_after(|| {
            // Set every other mode first, so the test also covers switching.
            Mode::ALL.into_iter().for_each(set_mode);
            set_mode(active);
        });
        for mode in Mode::ALL {
            let expected = if mode == active { 1.0 } else { 0.0 };
            assert_eq!(
                value(&text, MODE, &[("mode", mode.as_str())]),
                Some(expected),
                "{mode:?}"
            );
        }
    }
}

#[test]
#[rustfmt::skip] // one case per line reads as a table
fn recording_moves_only_its_own_series() {
    let table: [(fn(), &str); 11] = [
        (|| lock_path(claim()), r#"lockroute_lock_path_total{preset="pg-boss",kind="claim"} 1"#),
        (|| routed(Lane::Direct, Reason::Pattern), r#"lockroute_routed_total{lane="direct",reason="pattern"} 1"#),
        (|| upstream_connect(Lane::Pooler, false), r#"lockroute_upstream_connects_total{lane="pooler",result="error"} 1"#),
        (|| upstream_connect(Lane::Direct, true), r#"lockroute_upstream_connects_total{lane="direct",result="ok"} 1"#),
        (|| upstream_lost(Lane::Pooler, LossState::InFlight), r#"lockroute_upstream_lost_total{lane="pooler",state="in_flight"} 1"#),
        (|| error(ErrorKind::DirectLimit), r#"lockroute_errors_total{kind="direct_limit"} 1"#),
        (|| bytes(Lane::Direct, Direction::ToClient, 42), r#"lockroute_bytes_total{lane="direct",direction="to_client"} 42"#),
        (|| set_draining(true), "lockroute_draining 1"),
        (|| set_runtime_tasks(7), "lockroute_runtime_tasks 7"),
        (|| request_duration(Lane::Pooler, Duration::from_millis(2)), r#"lockroute_request_duration_seconds_bucket{lane="pooler",le="0.0025"} 1"#),
        (|| direct_wait(Duration::from_micros(150)), "lockroute_direct_wait_seconds_count 1"),
    ];
    for (record, line) in table {
        let text = render_after(record);
        assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        let own = family(&samples(line)[0].name).to_owned();
        let moved: Vec<_> = samples(&text)
            .into_iter()
            .filter(|s| s.value != 0.0 && s.name != BUILD_INFO && family(&s.name) != own)
            .collect();
        assert!(moved.is_empty(), "{line}: other series moved: {moved:?}");
    }
}

#[test]
fn connection_guards_decrement_on_drop() {
    let recorder = recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        register_all();
        let client = client_opened();
        let upstream = upstream_opened(Lane::Direct);
        let open = handle.render();
        assert_eq!(value(&open, CLIENT_CONNECTIONS, &[]), Some(1.0));
        assert_eq!(
            value(&open, UPSTREAM_CONNECTIONS, &[("lane", "direct")]),
            Some(1.0)
        );
        drop((client, upstream));
    });
    let closed = handle.render();
    assert_eq!(value(&closed, CLIENT_CONNECTIONS, &[]), Some(0.0));
    assert_eq!(value(&closed, CLIENT_CONNECTIONS_TOTAL, &[]), Some(1.0));
    assert_eq!(
        value(&closed, UPSTREAM_CONNECTIONS, &[("lane", "direct")]),
        Some(0.0)
    );
}

#[test]
fn install_twice_returns_the_same_registry() {
    let first = install();
    let second = install();
    error(ErrorKind::MessageTooLarge);
    for handle in [first, second] {
        let text = handle.render();
        let seen = value(&text, ERRORS_TOTAL, &[("kind", "message_too_large")]);
        assert!(seen.is_some_and(|v| v >= 1.0), "{text}");
        assert_eq!(
            value(&text, BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))]),
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn run_upkeep_cancelled_returns() {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run_upkeep(recorder().handle(), shutdown.clone()));
    shutdown.cancel();
    // The timeout only bounds a failure; a correct loop returns at once.
    let joined = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(matches!(joined, Ok(Ok(()))));
}

#[test]
fn rendered_text_passes_promtool_check_metrics() {
    let text = render_after(|| {
        routed(Lane::Direct, Reason::Pattern);
        request_duration(Lane::Direct, Duration::from_millis(3));
        direct_wait(Duration::from_millis(1));
        set_mode(Mode::Split);
    });
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        panic!("promtool not runnable ({e}); install it with `apt-get install -y prometheus`")
    });
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
