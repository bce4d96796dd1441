//! The command line: global connection options and one struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Connection:
  Give a client access URL (--url or WPS_CLIENT_URL), or a connection string
  (--connection-string or WPS_CONNECTION_STRING) with --hub; then wps mints the token itself
  with --user, --role and --minutes, as `wps token` does, and mints a fresh one for every
  reconnect. Joining a group needs the role webpubsub.joinLeaveGroup (or
  webpubsub.joinLeaveGroup.<group>), sending to a group webpubsub.sendToGroup[.<group>].

Logging:
  -v logs the library's lifecycle (connect, recovery, reconnect) to stderr (and `pub`/`event`
  print ack ids); -vv adds the library's verbose diagnostics and one line per message sent
  (`wps: > ...`) and per event received (`wps: < ...`). Access tokens are redacted.
  AZURE_LOG_LEVEL / WPS_LOG work as well.

Exit codes:
  0  success (also `wps sub` stopped by Ctrl-C or SIGTERM)
  1  an operation failed (the service's error name is printed, e.g. Forbidden)
  2  usage error
  3  connection failed (could not connect, or the connection was lost for good)";

/// A command-line client for Azure Web PubSub.
#[derive(Debug, Parser)]
#[command(name = "wps", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Connection,

    /// More output: -v lifecycle logs (and ack ids for pub/event), -vv also each message sent
    /// and event received.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Where and how to connect; shared by every subcommand.
#[derive(Debug, Args)]
pub struct Connection {
    /// Client access URL (ws:// or wss://, with access_token).
    #[arg(long, env = "WPS_CLIENT_URL", global = true, hide_env_values = true)]
    pub url: Option<String>,

    /// Connection string (Endpoint=...;AccessKey=...;) to mint tokens from.
    #[arg(
        long,
        env = "WPS_CONNECTION_STRING",
        global = true,
        hide_env_values = true
    )]
    pub connection_string: Option<String>,

    /// Hub (with a connection string).
    #[arg(long, global = true)]
    pub hub: Option<String>,

    /// User id put in the minted token.
    #[arg(long, global = true)]
    pub user: Option<String>,

    /// Role put in the minted token (repeatable), e.g. webpubsub.sendToGroup.
    #[arg(long = "role", value_name = "ROLE", global = true)]
    pub roles: Vec<String>,

    /// Lifetime of minted tokens in minutes.
    #[arg(long, default_value_t = 60, global = true)]
    pub minutes: u64,

    /// Subprotocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::JsonReliable, global = true)]
    pub protocol: ProtocolArg,

    /// Retries of a failed send or join, with the same ack id, for failures that may pass
    /// (timeouts, a lost connection, the service's InternalServerError).
    #[arg(long, default_value_t = 3, global = true)]
    pub retries: u32,

    /// Extra PEM root certificates for wss://.
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,

    /// HTTP CONNECT proxy, http://[user:password@]host:port ("" for none; default from
    /// HTTPS_PROXY / HTTP_PROXY / ALL_PROXY).
    #[arg(long, global = true)]
    pub proxy: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// json.reliable.webpubsub.azure.v1
    #[value(alias = "json.reliable.webpubsub.azure.v1")]
    JsonReliable,
    /// json.webpubsub.azure.v1
    #[value(alias = "json.webpubsub.azure.v1")]
    Json,
    /// protobuf.reliable.webpubsub.azure.v1
    #[value(alias = "protobuf.reliable.webpubsub.azure.v1")]
    ProtobufReliable,
    /// protobuf.webpubsub.azure.v1
    #[value(alias = "protobuf.webpubsub.azure.v1")]
    Protobuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Join groups and print each message sent to them.
    Sub(SubArgs),
    /// Send MESSAGE, or each line of standard input, to a group.
    Pub(PubArgs),
    /// Send MESSAGE, or each line of standard input, as a custom event to the upstream.
    Event(EventArgs),
    /// Invoke an upstream event with MESSAGE and print the response.
    Invoke(InvokeArgs),
    /// Publish a group stream (one fragment per line of standard input or --file, or
    /// --chunk-size bytes each), or with --listen print the streams sent to groups.
    Stream(StreamArgs),
    /// Print a client access URL minted from a connection string.
    Token(TokenArgs),
    /// Measure throughput and latency: run `bench sub`, then `bench pub`, on the same group.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send messages as fast as acks allow; print the rate and the ack latency.
    Pub(BenchPubArgs),
    /// Receive messages; print the rate and the latency since `bench pub` sent each.
    Sub(BenchSubArgs),
}

#[derive(Debug, Args)]
pub struct BenchPubArgs {
    /// The group to send to.
    #[arg(long, default_value = "bench")]
    pub group: String,

    /// How many messages.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,

    /// Bytes per message (at least the timestamp header, about 30 bytes).
    #[arg(long, default_value_t = 64)]
    pub size: usize,

    /// Sends waiting for their ack at once.
    #[arg(long, default_value_t = 100)]
    pub inflight: usize,

    /// Send without acks (no ack latency then).
    #[arg(long)]
    pub fire_and_forget: bool,
}

#[derive(Debug, Args)]
pub struct BenchSubArgs {
    /// The group to join.
    #[arg(long, default_value = "bench")]
    pub group: String,

    /// How many messages to wait for.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
}

#[derive(Debug, Args)]
pub struct SubArgs {
    /// Group to join (repeatable).
    #[arg(long = "group", value_name = "GROUP", required = true)]
    pub groups: Vec<String>,

    /// Exit after this many messages.
    #[arg(long)]
    pub count: Option<u64>,

    /// Output: the data of each message (text), or one JSON object per message (json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The message data, one line each (binary as base64).
    Text,
    /// {"group","fromUserId","dataType","data","sequenceId"} per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataTypeArg {
    Text,
    Json,
    Binary,
}

/// What to send and how; shared by `pub` and `event`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// How the service and receivers interpret the data.
    #[arg(long, value_enum, default_value_t = DataTypeArg::Text)]
    pub data_type: DataTypeArg,

    /// Send without an ack (faster; failures are not reported).
    #[arg(long)]
    pub fire_and_forget: bool,

    /// The message; without it, each line of standard input is one message.
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct PubArgs {
    /// The group to send to.
    #[arg(long)]
    pub group: String,

    /// Do not deliver the message back to this connection.
    #[arg(long)]
    pub no_echo: bool,

    #[command(flatten)]
    pub send: SendArgs,
}

#[derive(Debug, Args)]
pub struct EventArgs {
    /// The event name.
    #[arg(long)]
    pub event: String,

    #[command(flatten)]
    pub send: SendArgs,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The event name.
    #[arg(long)]
    pub event: String,

    /// How the upstream interprets the data.
    #[arg(long, value_enum, default_value_t = DataTypeArg::Text)]
    pub data_type: DataTypeArg,

    /// Seconds to wait for the response.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,

    /// The request data (empty when absent).
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Group the connection joins when it connects (repeatable; the webpubsub.group claim).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    /// Group to stream to; with --listen, group to join (repeatable).
    #[arg(long = "group", value_name = "GROUP", required = true)]
    pub groups: Vec<String>,

    /// Receive instead of publishing: print every stream sent to the groups, fragment by
    /// fragment, and how each ended.
    #[arg(long)]
    pub listen: bool,

    #[command(flatten)]
    pub publish: StreamPublishArgs,

    #[command(flatten)]
    pub listen_opts: StreamListenArgs,
}

#[derive(Debug, Args)]
pub struct StreamPublishArgs {
    /// The stream id (default: a generated UUID).
    #[arg(long, conflicts_with = "listen")]
    pub stream_id: Option<String>,

    /// Do not deliver the stream back to this connection.
    #[arg(long, conflicts_with = "listen")]
    pub no_echo: bool,

    /// Idle timeout asked of the service, in milliseconds (default: the service's, 300000).
    /// wps keeps the stream alive while its input is quiet, so this only matters if wps
    /// itself stalls.
    #[arg(long, value_name = "MS", conflicts_with = "listen")]
    pub idle_timeout_ms: Option<u32>,

    /// Data type of each fragment (default text; binary with --chunk-size).
    #[arg(long, value_enum, conflicts_with = "listen")]
    pub data_type: Option<DataTypeArg>,

    /// Split the input into binary fragments of this many bytes (the last may be shorter)
    /// instead of one fragment per line.
    #[arg(long, value_name = "BYTES", conflicts_with = "listen")]
    pub chunk_size: Option<usize>,

    /// Read the input from this file instead of standard input.
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    pub file: Option<PathBuf>,

    /// After the input, end the stream with this user error code (receivers see
    /// `UserError`) instead of ending it cleanly.
    #[arg(long, value_name = "CODE", conflicts_with = "listen")]
    pub abort: Option<String>,

    /// The message that goes with --abort, or with the abort after an input error.
    #[arg(long, value_name = "TEXT", conflicts_with = "listen")]
    pub abort_message: Option<String>,

    /// The user error code the stream is aborted with when the input cannot be read.
    #[arg(
        long,
        value_name = "CODE",
        default_value = "InputError",
        conflicts_with = "listen"
    )]
    pub input_error_code: String,
}

#[derive(Debug, Args)]
pub struct StreamListenArgs {
    /// With --listen: exit after this many streams ended (cleanly or not).
    #[arg(long, value_name = "N", requires = "listen")]
    pub streams: Option<u64>,

    /// With --listen: `text` prints `[STREAM] DATA` per fragment and `[STREAM] ended ...` or
    /// `[STREAM] failed: ...` at the end; `json` one object per frame received.
    #[arg(long, value_enum, default_value_t = Format::Text, requires = "listen")]
    pub format: Format,

    /// With --listen: ignore a stream first seen after its first fragment.
    #[arg(long, requires = "listen")]
    pub from_start_only: bool,

    /// With --listen: end a stream with IdleTimeout when none of its frames arrived for this
    /// many milliseconds (default 300000).
    #[arg(long, value_name = "MS", requires = "listen")]
    pub stream_idle_timeout_ms: Option<u64>,
}
