use super::worker::Frames;
use super::*;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[test]
fn the_precompiler_command_line() {
    let job = parse(
        &strings(&[
            "--invalidation_mode",
            "checked_hash",
            "--optimize=1",
            "--python_version",
            "3.12",
            "--src",
            "a.py",
            "--src_name",
            "pkg/a.py",
            "--pyc",
            "out/a.pyc",
            "--src",
            "b.py",
            "--src_name",
            "pkg/b.py",
            "--pyc",
            "out/b.pyc",
        ]),
        None,
    )
    .unwrap();
    assert_eq!(
        job,
        Job {
            mode: InvalidationMode::CheckedHash,
            optimize: 1,
            version: Some((3, 12)),
            files: vec![
                ("a.py".into(), b"pkg/a.py".to_vec(), "out/a.pyc".into()),
                ("b.py".into(), b"pkg/b.py".to_vec(), "out/b.pyc".into()),
            ],
        }
    );
}

#[test]
fn defaults_and_the_python_precompilers_own_flags() {
    let job = parse(
        &strings(&["--persistent_worker", "--log_level", "INFO", "--worker_impl=serial"]),
        None,
    )
    .unwrap();
    assert_eq!(
        (job.mode, job.optimize, job.version),
        (InvalidationMode::Timestamp, -1, None)
    );
    assert!(job.files.is_empty());
    assert_eq!(parse_mode("UNCHECKED_HASH"), Ok(InvalidationMode::UncheckedHash));
}

#[test]
fn bad_command_lines_say_why() {
    let cases: &[(&[&str], &str)] = &[
        (&["--src", "a.py", "--pyc", "a.pyc"], "mismatched number"),
        (&["--invalidation_mode", "fast"], "Unknown PycInvalidationMode: fast"),
        (&["--optimize", "two"], "not a number"),
        (&["--python_version", "3"], "expected X.Y"),
        (&["--src"], "--src needs a value"),
        (&["-f"], "unknown argument \"-f\""),
    ];
    for (args, expected) in cases {
        let error = parse(&strings(args), None).unwrap_err();
        assert!(error.contains(expected), "{args:?}: {error}");
    }
}

#[test]
fn flagfiles_and_the_sandbox() {
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
        scratch.path().join("args"),
        "--src\nsrc/a.py\n--src_name\na.py\n--pyc\nbin/a.pyc\n@more\n",
    )
    .unwrap();
    std::fs::write(scratch.path().join("more"), "--python_version\n3.13\n").unwrap();
    let job = parse(&strings(&["@args"]), Some(scratch.path())).unwrap();
    assert_eq!(job.version, Some((3, 13)));
    assert_eq!(
        job.files,
        [(
            scratch.path().join("src/a.py"),
            b"a.py".to_vec(),
            scratch.path().join("bin/a.pyc")
        )]
    );
    assert!(
        parse(&strings(&["@missing"]), Some(scratch.path()))
            .unwrap_err()
            .contains("cannot read")
    );
}

#[test]
fn the_mode_is_chosen_by_the_precompilers_flags() {
    let os = |args: &[&str]| -> Vec<OsString> { args.iter().map(OsString::from).collect() };
    assert!(wanted(&os(&["--persistent_worker"])));
    assert!(wanted(&os(&["--src=a.py"])));
    assert!(!wanted(&os(&["-q", "--invalidation-mode", "checked-hash", "src"])));
    assert!(!wanted(&os(&["--source", "x"])));
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("flags");
    std::fs::write(&file, "--pyc\nx.pyc\n").unwrap();
    let mut at = OsString::from("@");
    at.push(&file);
    assert!(wanted(&[at]));
}

fn frames(input: &[u8]) -> Vec<Result<String, String>> {
    Frames::new(input)
        .map(|f| match f {
            Ok(b) => Ok(String::from_utf8(b).unwrap()),
            Err(b) => Err(String::from_utf8(b).unwrap()),
        })
        .collect()
}

#[test]
fn requests_back_to_back_or_one_per_line() {
    let ok = |s: &str| Ok(s.to_owned());
    assert_eq!(
        frames(br#"{"requestId":1}{"requestId":2,"arguments":["{x}"]}"#),
        [ok(r#"{"requestId":1}"#), ok(r#"{"requestId":2,"arguments":["{x}"]}"#)]
    );
    assert_eq!(
        frames(b"{\"a\":\"}\\\"{\"}\n\n  {\"b\":[{}]}\n"),
        [ok("{\"a\":\"}\\\"{\"}"), ok("{\"b\":[{}]}")]
    );
}

#[test]
fn garbage_and_cut_requests_are_frames_of_their_own() {
    assert_eq!(
        frames(b"hello\n{\"requestId\":3}oops{\"x\":"),
        [
            Err("hello".to_owned()),
            Ok("{\"requestId\":3}".to_owned()),
            Err("oops".to_owned()),
            Err("{\"x\":".to_owned())
        ]
    );
    assert_eq!(
        frames(br#"{"requestId":5,"arguments":[}{"requestId":6}"#),
        [
            Err(r#"{"requestId":5,"arguments":[}"#.to_owned()),
            Ok(r#"{"requestId":6}"#.to_owned())
        ]
    );
    assert!(frames(b"").is_empty());
    assert!(frames(b"  \n ").is_empty());
}
