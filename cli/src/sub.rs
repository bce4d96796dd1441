//! `wps sub`: join groups and print their messages.

use std::io::Write;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::UnboundedReceiver;
use webpubsub_client::{Client, Event};

use crate::args::{Connection, Format, SubArgs};
use crate::{connect, output, Failure};

pub async fn run(conn: &Connection, args: &SubArgs, verbose: u8) -> Result<(), Failure> {
    // Installed before connecting, so a signal at any point stops cleanly.
    let mut sigint = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let (client, events) = connect::client(conn)?;
    let result = tokio::select! {
        r = session(&client, events, args, verbose) => r,
        _ = sigint.recv() => Ok(()),
        _ = sigterm.recv() => Ok(()),
    };
    let _ = client.stop().await;
    result
}

pub fn signal_failure(e: std::io::Error) -> Failure {
    Failure::Operation(format!("cannot install signal handlers: {e}"))
}

async fn session(
    client: &Client,
    mut events: UnboundedReceiver<Event>,
    args: &SubArgs,
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
    let mut received = 0u64;
    if args.count == Some(0) {
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = events.recv().await {
        if verbose > 1 {
            eprintln!("wps: < {}", output::event_trace(&event));
        }
        match event {
            Event::GroupMessage {
                group,
                from_user_id,
                message,
                sequence_id,
            } => {
                let line = match args.format {
                    Format::Text => output::data_text(&message),
                    Format::Json => output::group_message_json(
                        &group,
                        from_user_id.as_deref(),
                        &message,
                        sequence_id,
                    ),
                };
                if writeln!(stdout, "{line}")
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    // The reader went away (e.g. `| head -1`): nothing left to do.
                    return Ok(());
                }
                received += 1;
                if Some(received) == args.count {
                    return Ok(());
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
