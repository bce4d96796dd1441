//! `wps` against the emulator: each subcommand, its output formats and its exit codes.

mod common;

use common::{run, wps, Emu, Proc, JOIN, SEND};
use serde_json::{json, Value};

/// Starts `wps sub` with `args` (and `-v`) and returns once it joined every group.
fn subscribe(emu: &Emu, args: &[&str]) -> Proc {
    let mut all = vec!["sub", "-v", "--hub", "chat", "--role", JOIN];
    all.extend_from_slice(args);
    let mut sub = Proc::spawn(emu.wps(&all));
    let groups = args.iter().filter(|a| **a == "--group").count();
    for _ in 0..groups {
        sub.stderr.until("wps: joined group");
    }
    sub
}

fn publish(emu: &Emu, args: &[&str], stdin: &str) -> common::Output {
    let mut all = vec!["pub", "--hub", "chat", "--role", SEND];
    all.extend_from_slice(args);
    run(emu.wps(&all), stdin)
}

#[test]
fn sub_json_prints_each_message_as_an_object_and_exits_after_count() {
    let emu = Emu::start();
    let mut sub = subscribe(
        &emu,
        &[
            "--group", "g1", "--group", "g2", "--count", "3", "--format", "json",
        ],
    );
    let out = publish(&emu, &["--user", "bob", "--group", "g1", "hello"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = publish(&emu, &["--group", "g2", "--data-type", "binary", "hi"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = publish(
        &emu,
        &["--group", "g1", "--data-type", "json", r#"{"n":[1,2]}"#],
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    let lines: Vec<Value> = (0..3)
        .map(|_| serde_json::from_str(&sub.stdout.next().expect("a line")).expect("JSON"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"group": "g1", "fromUserId": "bob", "dataType": "text", "data": "hello", "sequenceId": 1}),
            json!({"group": "g2", "fromUserId": null, "dataType": "binary", "data": "aGk=", "sequenceId": 2}),
            json!({"group": "g1", "fromUserId": null, "dataType": "json", "data": {"n": [1, 2]}, "sequenceId": 3}),
        ]
    );
    assert_eq!(sub.wait().code(), Some(0));
    assert_eq!(sub.stdout.next(), None, "nothing after --count messages");
}

#[test]
fn pub_sends_each_line_of_stdin_and_sub_text_prints_the_data() {
    let emu = Emu::start();
    let mut sub = subscribe(&emu, &["--group", "g", "--count", "3"]);
    let out = publish(&emu, &["-v", "--group", "g"], "one\ntwo words\r\nthree\n");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ack 1\nack 2\nack 3", "-v prints the ack ids");
    for expected in ["one", "two words", "three"] {
        assert_eq!(sub.stdout.next().as_deref(), Some(expected));
    }
    assert_eq!(sub.wait().code(), Some(0));
}

#[test]
fn pub_no_echo_and_fire_and_forget_deliver_to_others() {
    let emu = Emu::start();
    let mut sub = subscribe(&emu, &["--group", "g", "--count", "2"]);
    let out = publish(&emu, &["--group", "g", "--no-echo", "a"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = publish(&emu, &["-v", "--group", "g", "--fire-and-forget", "b"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "", "no ack ids without acks");
    assert_eq!(sub.stdout.next().as_deref(), Some("a"));
    assert_eq!(sub.stdout.next().as_deref(), Some("b"));
    assert_eq!(sub.wait().code(), Some(0));
}

#[test]
fn a_refused_send_exits_1_with_the_service_error_name() {
    let emu = Emu::start();
    let out = run(emu.wps(&["pub", "--hub", "chat", "--group", "g", "x"]), "");
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr.contains("Forbidden"), "{}", out.stderr);
    let out = run(emu.wps(&["sub", "--hub", "chat", "--group", "g"]), "");
    assert_eq!(out.code(), Some(1), "joining without the role");
    assert!(out.stderr.contains("Forbidden"), "{}", out.stderr);
}

#[test]
fn event_and_invoke_without_an_upstream_report_the_service_answer() {
    let emu = Emu::start();
    for command in ["event", "invoke"] {
        let out = run(
            emu.wps(&[
                command,
                "--retries",
                "0",
                "--hub",
                "chat",
                "--event",
                "ping",
                "hello",
            ]),
            "",
        );
        assert_eq!(out.code(), Some(1), "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains("InternalServerError")
                && out.stderr.contains("No event handler is configured"),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn invoke_prints_the_upstream_response_and_event_is_acked() {
    let emu = Emu::with_upstream(common::echo_upstream());
    let out = run(
        emu.wps(&["invoke", "--hub", "chat", "--event", "echo", "hello"]),
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "echo:hello");
    let out = run(
        emu.wps(&["event", "-v", "--hub", "chat", "--event", "note"]),
        "a\nb\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ack 1\nack 2");
}

#[test]
fn sub_speaks_the_protobuf_protocol() {
    let emu = Emu::start();
    let mut sub = subscribe(
        &emu,
        &[
            "--protocol",
            "protobuf",
            "--group",
            "g",
            "--count",
            "1",
            "--format",
            "json",
        ],
    );
    let out = publish(
        &emu,
        &["--group", "g", "--data-type", "binary", "bytes"],
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let line: Value = serde_json::from_str(&sub.stdout.next().expect("a line")).unwrap();
    assert_eq!(
        line,
        json!({"group": "g", "fromUserId": null, "dataType": "binary", "data": "Ynl0ZXM=", "sequenceId": null})
    );
    assert_eq!(sub.wait().code(), Some(0));
}

#[test]
fn a_minted_token_connects_with_its_identity_roles_and_groups() {
    let emu = Emu::start();
    let out = run(
        emu.wps(&[
            "token",
            "--hub",
            "chat",
            "--user",
            "carol",
            "--role",
            SEND,
            "--role",
            JOIN,
            "--group",
            "claimed",
            "--minutes",
            "5",
        ]),
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let url = out.stdout.trim().to_string();
    assert!(url.starts_with("ws://127.0.0.1:"), "{url}");
    assert!(url.contains("/client/hubs/chat?access_token="), "{url}");

    // Joined to `claimed` at connect by the `webpubsub.group` claim, to `g` by `wps sub`.
    let mut sub = Proc::spawn(wps(&[
        "sub", "-v", "--url", &url, "--group", "g", "--count", "1", "--format", "json",
    ]));
    sub.stderr.until("wps: joined group g");
    let info = emu.connections("chat");
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].user_id.as_deref(), Some("carol"));
    assert_eq!(info[0].groups, ["claimed", "g"]);

    let out = run(wps(&["pub", "-v", "--url", &url, "--group", "g", "hi"]), "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ack 1");
    let line: Value = serde_json::from_str(&sub.stdout.next().expect("a line")).unwrap();
    assert_eq!(line["fromUserId"], "carol");
    assert_eq!(line["data"], "hi");
    assert_eq!(sub.wait().code(), Some(0));
}

#[test]
fn sigint_and_sigterm_stop_sub_with_exit_0() {
    let emu = Emu::start();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut sub = subscribe(&emu, &["--group", "g"]);
        sub.signal(signal);
        assert_eq!(
            sub.wait().code(),
            Some(0),
            "signal {signal}: {:?}",
            sub.stderr.seen
        );
    }
}

#[test]
fn missing_connection_is_a_usage_error_and_an_unreachable_one_exits_3() {
    let out = run(wps(&["pub", "--group", "g", "x"]), "");
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--url"), "{}", out.stderr);

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/client/hubs/chat?access_token=x");
    let out = run(wps(&["pub", "--url", &url, "--group", "g", "x"]), "");
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("connection failed"), "{}", out.stderr);
}

#[test]
fn bench_pub_and_sub_report_rates_and_latencies() {
    let emu = Emu::start();
    let roles = ["--hub", "chat", "--role", JOIN, "--role", SEND];
    let mut sub =
        Proc::spawn(emu.wps(&[&["bench", "sub", "-v", "--count", "200"], &roles[..]].concat()));
    sub.stderr.until("wps: joined group bench");
    let out = run(
        emu.wps(
            &[
                &["bench", "pub", "--count", "200", "--size", "100"],
                &roles[..],
            ]
            .concat(),
        ),
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("sent 200 messages of 100 bytes in ")
            && out.stdout.contains("msgs/s")
            && out.stdout.contains("ack latency ms p50 "),
        "{}",
        out.stdout
    );
    assert_eq!(sub.wait().code(), Some(0), "{:?}", sub.stderr.seen);
    let line = sub.stdout.next().expect("a report");
    assert!(
        line.starts_with("received 200 messages in ") && line.contains("latency ms p50 "),
        "{line}"
    );
}
