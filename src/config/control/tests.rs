use super::*;

fn file_mode(text: &str) -> (Mode, ModeSource, Origin) {
    let effective = parse(text)
        .expect("parses")
        .over(&Inputs::default())
        .resolve();
    (
        effective.mode.value,
        effective.mode_source,
        effective.mode.origin,
    )
}

#[test]
fn control_file_table_sets_mode_and_source() {
    let cases = [
        ("", Mode::Split, ModeSource::Flag, Origin::Default),
        (
            "# nothing\n\n",
            Mode::Split,
            ModeSource::Flag,
            Origin::Default,
        ),
        (
            "LOCKROUTE_PASSTHROUGH=1\n",
            Mode::Passthrough,
            ModeSource::LockroutePassthrough,
            Origin::ControlFile,
        ),
        (
            " GBRAIN_DISABLE_DIRECT_POOL = true \n",
            Mode::Passthrough,
            ModeSource::GbrainDisableDirectPool,
            Origin::ControlFile,
        ),
        (
            "LOCKROUTE_PASSTHROUGH=0\nLOCKROUTE_MODE=shadow\n",
            Mode::Shadow,
            ModeSource::Flag,
            Origin::ControlFile,
        ),
    ];
    for (text, mode, source, origin) in cases {
        assert_eq!(file_mode(text), (mode, source, origin), "{text:?}");
    }
}

#[test]
fn control_file_wins_over_env_name_by_name() {
    let start = Inputs {
        passthrough: Some(Setting {
            value: true,
            origin: Origin::Env,
        }),
        pin: Some(Setting {
            value: Pin::Off,
            origin: Origin::Env,
        }),
        ..Inputs::default()
    };
    // The file turns the env's kill switch off and leaves the pin alone.
    let effective = parse("LOCKROUTE_PASSTHROUGH=false\n")
        .unwrap()
        .over(&start)
        .resolve();
    assert_eq!(effective.mode.value, Mode::Split);
    assert_eq!(effective.pin.value, Pin::Off);
    assert_eq!(effective.pin.origin, Origin::Env);
    // A removed line hands the name back to the env.
    let effective = parse("").unwrap().over(&start).resolve();
    assert_eq!(effective.mode.value, Mode::Passthrough);
    assert_eq!(effective.mode.origin, Origin::Env);
}

#[test]
fn control_file_lists_repeat_patterns_and_split_presets() {
    let inputs = parse(
        "LOCKROUTE_LOCK_PATTERNS=^UPDATE jobs\nLOCKROUTE_LOCK_PATTERNS=^DELETE FROM locks\n\
         LOCKROUTE_PRESETS=gbrain, river\nLOCKROUTE_PIN=off\n",
    )
    .unwrap();
    let effective = inputs.resolve();
    assert_eq!(
        effective.lock_patterns.value,
        ["^UPDATE jobs", "^DELETE FROM locks"]
    );
    assert_eq!(effective.presets.value, ["gbrain", "river"]);
    assert_eq!(effective.pin.value, Pin::Off);
    assert!(
        parse("LOCKROUTE_PRESETS=none")
            .unwrap()
            .resolve()
            .presets
            .value
            .is_empty()
    );
}

#[test]
fn control_file_bad_entries_are_refused_naming_the_entry() {
    let cases = [
        (
            "LOCKROUTE_PASSTHROUGH",
            "line 1: \"LOCKROUTE_PASSTHROUGH\": expected NAME=value",
        ),
        (
            "\nLOCKROUTE_PASTHROUGH=1",
            "line 2: \"LOCKROUTE_PASTHROUGH\": unknown name",
        ),
        (
            "LOCKROUTE_PASSTHROUGH=yes",
            "\"LOCKROUTE_PASSTHROUGH\": invalid value \"yes\"",
        ),
        (
            "LOCKROUTE_MODE=fast",
            "\"LOCKROUTE_MODE\": invalid value \"fast\"",
        ),
        (
            "LOCKROUTE_PIN=on",
            "\"LOCKROUTE_PIN\": invalid value \"on\"",
        ),
        (
            "LOCKROUTE_PRESETS=gbrain,sidekiq",
            "unknown preset \"sidekiq\"",
        ),
        (
            "LOCKROUTE_LOCK_PATTERNS=^UPDATE (jobs",
            "invalid regex \"^UPDATE (jobs\": unclosed group",
        ),
        ("LOCKROUTE_LOCK_PATTERNS=", "an empty pattern"),
        (
            "LOCKROUTE_PIN=off\nLOCKROUTE_PIN=auto",
            "line 2: \"LOCKROUTE_PIN\": set twice",
        ),
    ];
    for (text, want) in cases {
        let err = parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text:?}: {err}");
        assert!(err.starts_with("--control-file line "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

mod start {
    use crate::config::control::{Origin, Pin};
    use crate::config::test_support::{assert_error, env_of, parse, parse_with};

    #[test]
    fn start_inputs_record_where_each_setting_came_from() {
        let c = parse(&[]).unwrap();
        let e = c.start.resolve();
        assert_eq!(e.mode.origin, Origin::Default);
        assert_eq!(e.presets.origin, Origin::Default);
        assert_eq!(e.presets.value.len(), 10);
        assert_eq!(e.lock_patterns.origin, Origin::Default);
        assert_eq!(c.control_file, None);

        let env = env_of(&[
            ("LOCKROUTE_PRESETS", "gbrain, river"),
            ("LOCKROUTE_PIN", "off"),
            ("LOCKROUTE_PASSTHROUGH", "0"),
        ]);
        let c = parse_with(&["--mode", "shadow", "--lock-pattern", "^X"], &env).unwrap();
        let e = c.start.resolve();
        assert_eq!(
            (e.mode.value, e.mode.origin),
            (crate::config::Mode::Shadow, Origin::Flag)
        );
        assert_eq!((e.pin.value, e.pin.origin), (Pin::Off, Origin::Env));
        assert_eq!(e.presets.value, ["gbrain", "river"]);
        assert_eq!(e.lock_patterns.origin, Origin::Flag);
        assert_eq!(
            c.start.passthrough.as_ref().map(|s| s.origin),
            Some(Origin::Env)
        );
    }

    #[test]
    fn start_env_presets_and_pin_are_checked() {
        assert_error(
            parse_with(&[], &env_of(&[("LOCKROUTE_PRESETS", "gbrain,sidekiq")])),
            "--preset: unknown preset \"sidekiq\"",
        );
        assert_error(
            parse_with(&[], &env_of(&[("LOCKROUTE_PIN", "sometimes")])),
            "--pin: invalid value \"sometimes\"",
        );
        assert_error(
            parse(&["--control-poll-interval", "0s"]),
            "--control-poll-interval: ",
        );
    }
}
