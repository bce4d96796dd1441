//! `wps stream`: publish a group stream from standard input or a file, or (`--listen`) print
//! the streams sent to groups.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::UnboundedReceiver;
use webpubsub_client::{Client, Error, Event, GroupStream, Payload, StreamOptions};

use crate::args::{Connection, DataTypeArg, Format, StreamArgs, StreamPublishArgs};
use crate::sub::signal_failure;
use crate::{connect, output, Failure};

pub async fn run(conn: &Connection, args: &StreamArgs, verbose: u8) -> Result<(), Failure> {
    if args.listen {
        listen(conn, args, verbose).await
    } else {
        publish(conn, args, verbose).await
    }
}

// ------------------------------------------------------------------------------- publishing

/// Where fragments come from: lines, or fixed-size chunks of bytes.
struct Input {
    reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    chunk_size: Option<usize>,
    data_type: DataTypeArg,
}

impl Input {
    /// The next fragment, `None` at the end of the input.
    async fn next(&mut self) -> std::io::Result<Option<Payload>> {
        match self.chunk_size {
            Some(size) => {
                let mut chunk = vec![0u8; size];
                let mut filled = 0;
                while filled < size {
                    let n = self.reader.read(&mut chunk[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    return Ok(None);
                }
                chunk.truncate(filled);
                Ok(Some(Payload::binary(chunk)))
            }
            None => {
                let mut line = String::new();
                if self.reader.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                if line.ends_with('\n') {
                    line.pop();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                }
                Ok(Some(match self.data_type {
                    DataTypeArg::Text => Payload::text(line),
                    DataTypeArg::Json => Payload::json(line),
                    DataTypeArg::Binary => Payload::binary(line.into_bytes()),
                }))
            }
        }
    }
}

async fn open_input(args: &StreamPublishArgs) -> Result<Input, Failure> {
    let data_type = match (args.chunk_size, args.data_type) {
        (Some(0), _) => return Err(Failure::Usage("--chunk-size must be at least 1".into())),
        (Some(_), None | Some(DataTypeArg::Binary)) => DataTypeArg::Binary,
        (Some(_), Some(_)) => {
            return Err(Failure::Usage(
                "--chunk-size sends binary fragments: --data-type must be binary or absent".into(),
            ))
        }
        (None, d) => d.unwrap_or(DataTypeArg::Text),
    };
    let reader: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| Failure::Operation(format!("cannot open {}: {e}", path.display())))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    Ok(Input {
        reader: BufReader::with_capacity(64 * 1024, reader),
        chunk_size: args.chunk_size,
        data_type,
    })
}

async fn publish(conn: &Connection, args: &StreamArgs, verbose: u8) -> Result<(), Failure> {
    let [group] = args.groups.as_slice() else {
        return Err(Failure::Usage(
            "publishing a stream takes exactly one --group".into(),
        ));
    };
    let opts = &args.publish;
    if opts.idle_timeout_ms == Some(0) {
        return Err(Failure::Usage(
            "--idle-timeout-ms must be at least 1".into(),
        ));
    }
    let mut input = open_input(opts).await?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let (client, _events) = connect::connect(conn).await?;
    let result = publish_on(&client, group, opts, &mut input, verbose, async {
        tokio::select! {
            _ = sigint.recv() => {},
            _ = sigterm.recv() => {},
        }
    })
    .await;
    let _ = client.stop().await;
    result
}

async fn publish_on(
    client: &Client,
    group: &str,
    opts: &StreamPublishArgs,
    input: &mut Input,
    verbose: u8,
    interrupted: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    let stream = client
        .open_stream(
            group,
            StreamOptions {
                stream_id: opts.stream_id.clone(),
                no_echo: opts.no_echo,
                idle_timeout: opts
                    .idle_timeout_ms
                    .map(|ms| Duration::from_millis(ms.into())),
            },
        )
        .await
        .map_err(|e| Failure::Operation(format!("open stream: {}", describe(&e))))?;
    if verbose > 0 {
        println!("stream {} open", stream.id());
    }
    tokio::pin!(interrupted);
    let mut written = 0u64;
    loop {
        // `biased`: an interrupt is looked at before the input. Ctrl-C on `producer | wps
        // stream` also ends the producer, so the end of the input and the signal arrive
        // together; the stream is then aborted, never ended as if it were complete.
        let next = tokio::select! {
            biased;
            () = &mut interrupted => return Err(interrupt(&stream, written).await),
            next = input.next() => next,
        };
        let payload = match next {
            Ok(Some(payload)) => payload,
            Ok(None) => break,
            Err(e) => {
                let message = opts
                    .abort_message
                    .clone()
                    .unwrap_or_else(|| format!("reading the input failed: {e}"));
                abort(&stream, &message, &opts.input_error_code).await;
                return Err(Failure::Operation(format!(
                    "stream {}: reading the input failed after {written} fragments: {e}; aborted with {}",
                    stream.id(),
                    opts.input_error_code
                )));
            }
        };
        if verbose > 1 {
            eprintln!(
                "wps: > stream={} seq={} dataType={} bytes={}",
                stream.id(),
                written + 1,
                payload.data_type.as_str(),
                payload.data.len()
            );
        }
        let wrote = tokio::select! {
            biased;
            () = &mut interrupted => return Err(interrupt(&stream, written).await),
            r = stream.write(payload) => r,
        };
        wrote.map_err(|e| stream_failure(&stream, written, &e))?;
        written += 1;
    }
    if let Some(code) = &opts.abort {
        let message = opts.abort_message.as_deref();
        stream
            .abort(message, Some(code))
            .await
            .map_err(|e| stream_failure(&stream, written, &e))?;
        if verbose > 0 {
            println!(
                "stream {} aborted with {code} ({})",
                stream.id(),
                output::fragments_text(written)
            );
        }
        return Ok(());
    }
    stream
        .end()
        .await
        .map_err(|e| stream_failure(&stream, written, &e))?;
    if verbose > 0 {
        println!(
            "stream {} ended ({})",
            stream.id(),
            output::fragments_text(written)
        );
    }
    Ok(())
}

/// Aborts `stream` because the publisher was interrupted; the failure to report.
async fn interrupt(stream: &GroupStream, written: u64) -> Failure {
    abort(stream, "the publisher was interrupted", "Interrupted").await;
    Failure::Operation(format!(
        "stream {}: interrupted after {written} fragments; aborted",
        stream.id()
    ))
}

async fn abort(stream: &GroupStream, message: &str, code: &str) {
    // Best effort: the failure being reported matters more than whether the abort got through.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        stream.abort(Some(message), Some(code)),
    )
    .await;
}

fn stream_failure(stream: &GroupStream, written: u64, e: &Error) -> Failure {
    let text = format!(
        "stream {}: {} (after {written} fragments)",
        stream.id(),
        describe(e)
    );
    match e {
        Error::Stopped { .. } | Error::Connection { .. } | Error::NotConnected { .. } => {
            Failure::Connection(text)
        }
        _ => Failure::Operation(text),
    }
}

/// The service's error name first (what scripts match on), then its message.
fn describe(e: &Error) -> String {
    match e {
        Error::StreamRefused { name, message } | Error::StreamClosed { name, message } => {
            if message.is_empty() {
                name.clone()
            } else {
                format!("{name}: {message}")
            }
        }
        e => e.to_string(),
    }
}

// -------------------------------------------------------------------------------- listening

async fn listen(conn: &Connection, args: &StreamArgs, verbose: u8) -> Result<(), Failure> {
    let l = &args.listen_opts;
    let (client, events) = connect::client_with(conn, |o| {
        o.stream_from_start_only = l.from_start_only;
        if let Some(ms) = l.stream_idle_timeout_ms {
            o.stream_idle_timeout = Duration::from_millis(ms.max(1));
        }
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let result = tokio::select! {
        r = listen_on(&client, events, args, verbose) => r,
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
    };
    let _ = client.stop().await;
    result
}

async fn listen_on(
    client: &Client,
    mut events: UnboundedReceiver<Event>,
    args: &StreamArgs,
    verbose: u8,
) -> Result<(), Failure> {
    connect::start(client).await?;
    for group in &args.groups {
        let ok = client
            .join_group(group, None)
            .await
            .map_err(|e| Failure::Operation(format!("join group {group}: {e}")))?;
        if verbose > 0 {
            eprintln!("wps: joined group {group} (ack id {})", ok.ack_id);
        }
    }
    let limit = args.listen_opts.streams;
    if limit == Some(0) {
        return Ok(());
    }
    let format = args.listen_opts.format;
    // Fragments seen so far per (group, stream id), for the end line.
    let mut fragments: HashMap<(String, String), u64> = HashMap::new();
    let mut ended = 0u64;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = events.recv().await {
        if verbose > 1 {
            eprintln!("wps: < {}", output::event_trace(&event));
        }
        match event {
            Event::StreamFrame {
                group,
                from_user_id,
                message,
                sequence_id,
                stream_id,
                stream_sequence_id,
                end_of_stream,
                error,
            } => {
                let key = (group.clone(), stream_id.clone());
                // A terminal frame may carry a last fragment; an empty one carries none.
                let has_data = !end_of_stream || !message.data.is_empty();
                let mut lines = Vec::new();
                match format {
                    Format::Json => lines.push(output::stream_frame_json(&output::StreamFrame {
                        group: &group,
                        from_user_id: from_user_id.as_deref(),
                        stream_id: &stream_id,
                        stream_sequence_id,
                        end_of_stream,
                        message: &message,
                        error: error.as_ref(),
                        sequence_id,
                    })),
                    Format::Text if has_data => {
                        lines.push(output::stream_fragment_text(&stream_id, &message))
                    }
                    Format::Text => {}
                }
                if has_data {
                    *fragments.entry(key.clone()).or_default() += 1;
                }
                if end_of_stream {
                    let count = fragments.remove(&key).unwrap_or(0);
                    if format == Format::Text {
                        lines.push(output::stream_end_text(&stream_id, error.as_ref(), count));
                    }
                }
                for line in lines {
                    if writeln!(stdout, "{line}")
                        .and_then(|()| stdout.flush())
                        .is_err()
                    {
                        // The reader went away (e.g. `| head -1`): nothing left to do.
                        return Ok(());
                    }
                }
                if end_of_stream {
                    ended += 1;
                    if Some(ended) == limit {
                        return Ok(());
                    }
                }
            }
            Event::Disconnected { message, .. } if verbose > 0 => {
                eprintln!(
                    "wps: disconnected{}",
                    message.map(|m| format!(": {m}")).unwrap_or_default()
                );
            }
            Event::RejoinGroupFailed { group, error } => {
                eprintln!("wps: rejoining group {group} failed: {error}");
            }
            Event::Stopped { reason } => {
                return Err(Failure::Connection(
                    reason.unwrap_or_else(|| "the client stopped".into()),
                ));
            }
            _ => {}
        }
    }
    Err(Failure::Connection("the client stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use webpubsub_client::{ClientOptions, Credential};
    use webpubsub_emulator::{Config, Emulator};

    async fn started(emu: &Emulator, roles: &[&str]) -> (Client, UnboundedReceiver<Event>) {
        let url = emu.client_access_url("chat", None, roles, &[], Duration::from_secs(600));
        let (client, events) = Client::with_channel(Credential::Url(url), ClientOptions::default());
        client.start().await.expect("start");
        (client, events)
    }

    /// The end of the input and an interrupt observed together: the stream is aborted (the
    /// input was cut short), never ended as complete.
    #[tokio::test]
    async fn an_interrupt_together_with_the_end_of_input_aborts_the_stream() {
        let emu = Emulator::start(Config {
            port: 0,
            ..Config::default()
        })
        .await
        .expect("emulator");
        let (listener, mut events) = started(&emu, &["webpubsub.joinLeaveGroup"]).await;
        listener.join_group("g", None).await.expect("join");
        let (publisher, _events) = started(&emu, &["webpubsub.sendToGroup"]).await;
        let opts = StreamPublishArgs {
            stream_id: Some("cut".into()),
            no_echo: false,
            idle_timeout_ms: None,
            data_type: None,
            chunk_size: None,
            file: None,
            abort: None,
            abort_message: None,
            input_error_code: "InputError".into(),
        };
        let mut input = Input {
            reader: BufReader::with_capacity(16, Box::new(tokio::io::empty())),
            chunk_size: None,
            data_type: DataTypeArg::Text,
        };
        let result = publish_on(
            &publisher,
            "g",
            &opts,
            &mut input,
            0,
            std::future::ready(()),
        )
        .await;
        match result {
            Err(Failure::Operation(m)) => {
                assert!(m.contains("interrupted after 0 fragments"), "{m}")
            }
            other => panic!("expected the interrupt, got {other:?}"),
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match events.recv().await.expect("listener events") {
                    frame @ Event::StreamFrame { .. } => break frame,
                    _ => continue,
                }
            }
        })
        .await
        .expect("the stream's end reaches the listener");
        let Event::StreamFrame {
            stream_id,
            end_of_stream,
            error,
            ..
        } = frame
        else {
            unreachable!()
        };
        assert_eq!(stream_id, "cut");
        assert!(end_of_stream);
        let error = error.expect("an aborted stream carries its error");
        assert_eq!(error.user_error_code.as_deref(), Some("Interrupted"));
        let _ = publisher.stop().await;
        let _ = listener.stop().await;
        emu.shutdown().await;
    }
}
