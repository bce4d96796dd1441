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

#[test]
fn help_documents_exit_codes_connection_variables_and_flags() {
    let out = run(wps(&["--help"]), "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for needle in [
        "Exit codes:",
        "0  success (also `wps sub` stopped by Ctrl-C or SIGTERM)",
        "1  an operation failed",
        "2  usage error",
        "3  connection failed",
        "WPS_CLIENT_URL",
        "WPS_CONNECTION_STRING",
        "--ca-file",
        "--proxy",
        "--verbose",
        "stream",
    ] {
        assert!(
            out.stdout.contains(needle),
            "--help lacks {needle:?}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn wps_client_url_from_the_environment_connects() {
    let emu = Emu::start();
    let out = run(
        emu.wps(&["token", "--hub", "chat", "--user", "env", "--role", SEND]),
        "",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let url = out.stdout.trim().to_string();
    let mut cmd = wps(&["pub", "-v", "--group", "g", "from env"]);
    cmd.env("WPS_CLIENT_URL", &url);
    let out = run(cmd, "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ack 1");
}

#[test]
fn vv_traces_each_message_and_event_and_redacts_tokens() {
    let emu = Emu::start();
    let mut sub = Proc::spawn(emu.wps(&[
        "sub", "-vv", "--hub", "chat", "--role", JOIN, "--group", "g", "--count", "1",
    ]));
    sub.stderr.until("wps: joined group g");
    let out = publish(&emu, &["-vv", "--user", "tracer", "--group", "g", "hi"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("wps: > group=g dataType=text bytes=2"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("[wps verbose]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("access_token=REDACTED") && !out.stderr.contains("access_token=ey"),
        "{}",
        out.stderr
    );
    assert_eq!(sub.stdout.next().as_deref(), Some("hi"));
    let line = sub.stderr.until("wps: < groupMessage");
    assert!(
        line.contains("group=g fromUserId=tracer dataType=text bytes=2 sequenceId=1"),
        "{line}"
    );
    assert_eq!(sub.wait().code(), Some(0));
}

/// A one-shot HTTP CONNECT proxy on 127.0.0.1: tunnels each connection and reports the
/// CONNECT target it was asked for.
fn connect_proxy() -> (u16, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = tx.send(request.trim_end().to_string());
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                let mut client_w = client.try_clone().unwrap();
                client_w
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let mut up_r = upstream.try_clone().unwrap();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_r, &mut client_w);
                });
                let mut up_w = upstream;
                let buffered = reader.buffer().to_vec();
                let _ = up_w.write_all(&buffered);
                let mut rest = reader.into_inner();
                let _ = std::io::copy(&mut rest, &mut up_w);
            });
        }
    });
    (port, rx)
}

#[test]
fn proxy_flag_tunnels_through_an_http_connect_proxy() {
    let emu = Emu::start();
    let (port, seen) = connect_proxy();
    let proxy = format!("http://127.0.0.1:{port}");
    let out = publish(&emu, &["-v", "--proxy", &proxy, "--group", "g", "x"], "");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "ack 1");
    let request = seen
        .recv_timeout(common::DEADLINE)
        .expect("the proxy saw a CONNECT");
    let endpoint = emu.connection_string();
    let host = endpoint
        .split(';')
        .find_map(|p| p.strip_prefix("Endpoint=http://"))
        .unwrap()
        .to_string();
    assert_eq!(request, format!("CONNECT {host} HTTP/1.1"));

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = publish(
        &emu,
        &[
            "--proxy",
            &format!("http://127.0.0.1:{closed}"),
            "--group",
            "g",
            "x",
        ],
        "",
    );
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(out.stderr.contains("proxy"), "{}", out.stderr);
}

#[test]
fn ca_file_flag_is_read_for_wss() {
    let out = run(
        wps(&[
            "pub",
            "--ca-file",
            "/nonexistent/ca.pem",
            "--url",
            "wss://127.0.0.1:9/client/hubs/h?access_token=x",
            "--group",
            "g",
            "x",
        ]),
        "",
    );
    assert_eq!(out.code(), Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot open CA file /nonexistent/ca.pem"),
        "{}",
        out.stderr
    );
}

/// Starts `wps stream --listen` with `args` (and `-v`) and returns once it joined every group.
fn listen(emu: &Emu, args: &[&str]) -> Proc {
    let mut all = vec!["stream", "--listen", "-v", "--hub", "chat", "--role", JOIN];
    all.extend_from_slice(args);
    let mut listener = Proc::spawn(emu.wps(&all));
    let groups = args.iter().filter(|a| **a == "--group").count();
    for _ in 0..groups {
        listener.stderr.until("wps: joined group");
    }
    listener
}

fn stream(emu: &Emu, args: &[&str], stdin: &str) -> common::Output {
    let mut all = vec![
        "stream", "--hub", "chat", "--user", "streamer", "--role", SEND,
    ];
    all.extend_from_slice(args);
    run(emu.wps(&all), stdin)
}

#[test]
fn stream_sends_each_line_as_a_fragment_and_listen_json_prints_frames_and_the_end() {
    let emu = Emu::start();
    let mut rx = listen(
        &emu,
        &["--group", "g", "--streams", "1", "--format", "json"],
    );
    let out = stream(
        &emu,
        &[
            "-v",
            "--group",
            "g",
            "--stream-id",
            "s1",
            "--idle-timeout-ms",
            "60000",
        ],
        "one\ntwo words\r\nthree\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "stream s1 open\nstream s1 ended (3 fragments)");

    let frames: Vec<Value> = (0..4)
        .map(|_| serde_json::from_str(&rx.stdout.next().expect("a line")).expect("JSON"))
        .collect();
    for (i, data) in ["one", "two words", "three"].iter().enumerate() {
        let f = &frames[i];
        assert_eq!(f["group"], "g");
        assert_eq!(f["fromUserId"], "streamer");
        assert_eq!(f["streamId"], "s1");
        assert_eq!(f["streamSequenceId"], i as u64 + 1);
        assert_eq!(f["endOfStream"], false);
        assert_eq!(f["dataType"], "text");
        assert_eq!(f["data"], *data);
        assert_eq!(f["error"], Value::Null);
    }
    let end = &frames[3];
    assert_eq!(end["streamId"], "s1");
    assert_eq!(end["endOfStream"], true);
    assert_eq!(
        end["streamSequenceId"], 4,
        "the terminal frame carries the next id"
    );
    assert_eq!(end["error"], Value::Null);
    assert_eq!(rx.wait().code(), Some(0), "exits after --streams 1");
    assert_eq!(rx.stdout.next(), None);
}

#[test]
fn stream_chunk_size_sends_a_file_as_binary_fragments_in_order() {
    let emu = Emu::start();
    let mut rx = listen(&emu, &["--group", "g", "--streams", "1"]);
    let path = std::env::temp_dir().join(format!("wps-stream-{}.bin", std::process::id()));
    let bytes: Vec<u8> = (0u8..10).collect();
    std::fs::write(&path, &bytes).unwrap();
    let out = stream(
        &emu,
        &[
            "--group",
            "g",
            "--stream-id",
            "bin",
            "--chunk-size",
            "4",
            "--file",
            path.to_str().unwrap(),
        ],
        "",
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // base64 of [0,1,2,3], [4,5,6,7], [8,9]
    for expected in [
        "[bin] AAECAw==",
        "[bin] BAUGBw==",
        "[bin] CAk=",
        "[bin] ended (3 fragments)",
    ] {
        assert_eq!(rx.stdout.next().as_deref(), Some(expected));
    }
    assert_eq!(rx.wait().code(), Some(0));
}

#[test]
fn stream_abort_reaches_the_listener_as_a_user_error_with_its_code() {
    let emu = Emu::start();
    let mut rx = listen(&emu, &["--group", "g", "--streams", "2"]);
    let out = stream(
        &emu,
        &[
            "-v",
            "--group",
            "g",
            "--stream-id",
            "a",
            "--abort",
            "APP_42",
            "--abort-message",
            "stream failed",
        ],
        "partial\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "stream a open\nstream a aborted with APP_42 (1 fragment)"
    );
    assert_eq!(rx.stdout.next().as_deref(), Some("[a] partial"));
    assert_eq!(
        rx.stdout.next().as_deref(),
        Some("[a] failed: UserError [APP_42]: stream failed (1 fragment)")
    );
    // JSON data, one fragment per line, then a clean end.
    let out = stream(
        &emu,
        &["--group", "g", "--stream-id", "j", "--data-type", "json"],
        "{\"n\":1}\n[2]\n",
    );
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for expected in ["[j] {\"n\":1}", "[j] [2]", "[j] ended (2 fragments)"] {
        assert_eq!(rx.stdout.next().as_deref(), Some(expected));
    }
    assert_eq!(rx.wait().code(), Some(0));
}

#[test]
fn an_interrupted_stream_is_aborted_and_the_listener_sees_why() {
    let emu = Emu::start();
    let mut rx = listen(&emu, &["--group", "g", "--streams", "1"]);
    // Standard input stays open: the publisher waits for more input until the signal.
    let mut tx = Proc::spawn(emu.wps(&[
        "stream",
        "-v",
        "--hub",
        "chat",
        "--role",
        SEND,
        "--group",
        "g",
        "--stream-id",
        "i",
    ]));
    tx.stdout.until("stream i open");
    tx.signal(libc::SIGTERM);
    assert_eq!(tx.wait().code(), Some(1), "{:?}", tx.stderr.seen);
    let line = rx.stdout.next().expect("the end line");
    assert!(
        line.starts_with("[i] failed: UserError [Interrupted]"),
        "{line}"
    );
    assert_eq!(rx.wait().code(), Some(0));
}

#[test]
fn stream_refusals_and_usage_errors_have_their_exit_codes() {
    let emu = Emu::start();
    let out = run(emu.wps(&["stream", "--hub", "chat", "--group", "g"]), "x\n");
    assert_eq!(out.code(), Some(1), "no send role: {}", out.stderr);
    assert!(
        out.stderr.contains("open stream: Forbidden"),
        "{}",
        out.stderr
    );
    for args in [
        &[
            "stream",
            "--hub",
            "chat",
            "--group",
            "g",
            "--chunk-size",
            "4",
            "--data-type",
            "text",
        ][..],
        &["stream", "--hub", "chat", "--group", "g", "--group", "h"][..],
        &[
            "stream",
            "--hub",
            "chat",
            "--group",
            "g",
            "--listen",
            "--stream-id",
            "x",
        ][..],
        &["stream", "--hub", "chat", "--group", "g", "--streams", "1"][..],
    ] {
        let out = run(emu.wps(args), "");
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn listen_from_start_only_ignores_a_stream_joined_midway_and_reports_idle_streams() {
    let emu = Emu::start();
    let publisher = |id: &str| {
        let mut tx = Proc::spawn(emu.wps(&[
            "stream",
            "-v",
            "--hub",
            "chat",
            "--role",
            SEND,
            "--group",
            "g",
            "--stream-id",
            id,
        ]));
        tx.stdout.until(&format!("stream {id} open"));
        tx
    };
    // A listener that joins after the first fragment of "late" went out.
    let mut early = listen(&emu, &["--group", "g", "--streams", "2"]);
    let mut tx = publisher("late");
    tx.write_stdin("one\n");
    assert_eq!(early.stdout.next().as_deref(), Some("[late] one"));
    let mut strict = listen(
        &emu,
        &["--group", "g", "--streams", "1", "--from-start-only"],
    );
    let mut midway = listen(&emu, &["--group", "g", "--streams", "1"]);
    tx.write_stdin("two\n");
    tx.close_stdin();
    assert_eq!(tx.wait().code(), Some(0), "{:?}", tx.stderr.seen);
    assert_eq!(early.stdout.next().as_deref(), Some("[late] two"));
    assert_eq!(
        early.stdout.next().as_deref(),
        Some("[late] ended (2 fragments)")
    );
    // Without --from-start-only the stream is shown from where the listener came in.
    assert_eq!(midway.stdout.next().as_deref(), Some("[late] two"));
    assert_eq!(
        midway.stdout.next().as_deref(),
        Some("[late] ended (1 fragment)")
    );
    assert_eq!(midway.wait().code(), Some(0));

    // A whole stream reaches the strict listener; "late" did not.
    let mut tx = publisher("whole");
    tx.write_stdin("a\n");
    tx.close_stdin();
    assert_eq!(tx.wait().code(), Some(0), "{:?}", tx.stderr.seen);
    assert_eq!(strict.stdout.next().as_deref(), Some("[whole] a"));
    assert_eq!(
        strict.stdout.next().as_deref(),
        Some("[whole] ended (1 fragment)")
    );
    assert_eq!(strict.wait().code(), Some(0));
    assert_eq!(early.stdout.next().as_deref(), Some("[whole] a"));
    assert_eq!(early.wait().code(), Some(0));

    // The listener's own idle timeout: the publisher keeps its stream open with keep-alives,
    // which subscribers never see, so a quiet stream ends for the listener.
    let mut idle = listen(
        &emu,
        &[
            "--group",
            "g",
            "--streams",
            "1",
            "--stream-idle-timeout-ms",
            "300",
        ],
    );
    let mut tx = publisher("quiet");
    tx.write_stdin("only\n");
    assert_eq!(idle.stdout.next().as_deref(), Some("[quiet] only"));
    let end = idle.stdout.next().expect("the end line");
    assert!(end.starts_with("[quiet] failed: IdleTimeout"), "{end}");
    assert_eq!(idle.wait().code(), Some(0));
    tx.close_stdin();
    assert_eq!(
        tx.wait().code(),
        Some(0),
        "the publisher's stream stayed open: {:?}",
        tx.stderr.seen
    );
}
