//! `wps pub`, `wps event` and `wps invoke`: send messages and report the service's answer.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use webpubsub_client::{Client, Error, Payload, SendOptions};

use crate::args::{Connection, DataTypeArg, EventArgs, InvokeArgs, PubArgs, SendArgs};
use crate::{connect, output, Failure};

/// Where `send_all` sends to.
enum Target<'a> {
    Group { group: &'a str, no_echo: bool },
    Event(&'a str),
}

pub async fn run_pub(conn: &Connection, args: &PubArgs, verbose: u8) -> Result<(), Failure> {
    let target = Target::Group {
        group: &args.group,
        no_echo: args.no_echo,
    };
    send_all(conn, target, &args.send, verbose).await
}

pub async fn run_event(conn: &Connection, args: &EventArgs, verbose: u8) -> Result<(), Failure> {
    send_all(conn, Target::Event(&args.event), &args.send, verbose).await
}

pub async fn run_invoke(conn: &Connection, args: &InvokeArgs) -> Result<(), Failure> {
    let (client, _events) = connect::connect(conn).await?;
    let request = payload(args.data_type, args.message.clone().unwrap_or_default());
    let result = client
        .invoke_event(
            &args.event,
            request,
            Some(Duration::from_secs(args.timeout.max(1))),
        )
        .await;
    let _ = client.stop().await;
    let response = result.map_err(|e| {
        let error = match e {
            // An invocation has no ack id: show the service's error without one.
            Error::Ack { name, message, .. } => format!("{name}: {message}"),
            e => e.to_string(),
        };
        Failure::Operation(format!("invoke {}: {error}", args.event))
    })?;
    println!("{}", output::data_text(&response));
    Ok(())
}

fn payload(data_type: DataTypeArg, text: String) -> Payload {
    match data_type {
        DataTypeArg::Text => Payload::text(text),
        DataTypeArg::Json => Payload::json(text),
        DataTypeArg::Binary => Payload::binary(text.into_bytes()),
    }
}

/// The message argument once, or each line of standard input.
enum Messages {
    One(Option<String>),
    Stdin(Lines<BufReader<Stdin>>),
}

impl Messages {
    fn new(message: Option<&str>) -> Messages {
        match message {
            Some(m) => Messages::One(Some(m.to_string())),
            None => Messages::Stdin(BufReader::new(tokio::io::stdin()).lines()),
        }
    }

    async fn next(&mut self) -> Result<Option<String>, Failure> {
        match self {
            Messages::One(m) => Ok(m.take()),
            Messages::Stdin(lines) => lines
                .next_line()
                .await
                .map(|l| l.map(|l| l.strip_suffix('\r').map(str::to_string).unwrap_or(l)))
                .map_err(|e| Failure::Operation(format!("reading standard input: {e}"))),
        }
    }
}

async fn send_all(
    conn: &Connection,
    target: Target<'_>,
    args: &SendArgs,
    verbose: u8,
) -> Result<(), Failure> {
    let (client, _events) = connect::connect(conn).await?;
    let result = send_each(&client, &target, args, verbose).await;
    // Stopping also writes fire-and-forget frames still queued.
    let _ = client.stop().await;
    result
}

async fn send_each(
    client: &Client,
    target: &Target<'_>,
    args: &SendArgs,
    verbose: u8,
) -> Result<(), Failure> {
    let mut messages = Messages::new(args.message.as_deref());
    let opts = SendOptions {
        fire_and_forget: args.fire_and_forget,
        ..SendOptions::default()
    };
    while let Some(text) = messages.next().await? {
        let data = payload(args.data_type, text);
        if verbose > 1 {
            let to = match *target {
                Target::Group { group, .. } => format!("group={group}"),
                Target::Event(event) => format!("event={event}"),
            };
            eprintln!(
                "wps: > {to} dataType={} bytes={}",
                data.data_type.as_str(),
                data.data.len()
            );
        }
        let (result, what) = match *target {
            Target::Group { group, no_echo } => (
                client
                    .send_to_group(group, data, SendOptions { no_echo, ..opts })
                    .await,
                "send to group",
            ),
            Target::Event(event) => (client.send_event(event, data, opts).await, "send event"),
        };
        let ok = result.map_err(|e| Failure::Operation(format!("{what}: {}", describe(&e))))?;
        if verbose > 0 && !args.fire_and_forget {
            let dup = if ok.duplicated { " (duplicate)" } else { "" };
            println!("ack {}{dup}", ok.ack_id);
        }
    }
    Ok(())
}

/// The service's error name first (what scripts match on), then its message and the ack id.
fn describe(e: &Error) -> String {
    match e {
        Error::Ack {
            ack_id,
            name,
            message,
        } => format!("{name}: {message} (ack id {ack_id})"),
        e => e.to_string(),
    }
}
