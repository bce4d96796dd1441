//! `wps-emulator`: run the Web PubSub emulator from the command line.

use std::io::Write;
use webpubsub_emulator::{Config, Emulator, TlsFiles, DEFAULT_ACCESS_KEY};

const USAGE: &str = "\
Usage: wps-emulator [--host HOST] [--port PORT] [--access-key KEY] [--upstream URL]
                    [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [-v]

Local Azure Web PubSub service emulator.

Options:
  --host HOST         address to listen on (default 127.0.0.1)
  --port PORT         port to listen on; 0 picks a free port (default 8080)
  --access-key KEY    access key for tokens and signatures (default: the development key)
  --upstream URL      upstream event handler URL; may contain {hub} and {event}
  --tls-cert PEM      serve https:// and wss:// with this certificate chain (needs --tls-key)
  --tls-key PEM       the private key of --tls-cert
  --tls-client-ca PEM require a client certificate signed by a CA in this file (mutual TLS)
  -v, --verbose       more logging (repeat for debug); or set WPS_EMULATOR_LOG=error|warn|info|debug
  -h, --help          print this help

The first line on stdout is the connection string:
  Endpoint=http://HOST:PORT;AccessKey=KEY;Version=1.0;   (https:// with --tls-cert)";

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) && r.target().starts_with("webpubsub_emulator") {
            eprintln!("[{} {}] {}", r.level(), r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

fn parse_args() -> Result<(Config, usize), String> {
    let mut config = Config {
        port: 8080,
        ..Config::default()
    };
    let mut verbosity = 0;
    let (mut cert, mut key, mut client_ca) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--host" => config.host = value("--host")?,
            "--port" => {
                config.port = value("--port")?
                    .parse()
                    .map_err(|_| "invalid --port".to_string())?
            }
            "--access-key" => config.access_key = value("--access-key")?,
            "--upstream" => config.upstream = Some(value("--upstream")?),
            "--tls-cert" => cert = Some(value("--tls-cert")?.into()),
            "--tls-key" => key = Some(value("--tls-key")?.into()),
            "--tls-client-ca" => client_ca = Some(value("--tls-client-ca")?.into()),
            "-v" | "--verbose" => verbosity += 1,
            "-vv" => verbosity += 2,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    config.tls = match (cert, key, client_ca) {
        (None, None, None) => None,
        (Some(cert_file), Some(key_file), client_ca_file) => Some(TlsFiles {
            cert_file,
            key_file,
            client_ca_file,
        }),
        _ => {
            return Err("--tls-cert and --tls-key go together (--tls-client-ca needs both)".into())
        }
    };
    if config.access_key.is_empty() {
        return Err("--access-key must not be empty".into());
    }
    Ok((config, verbosity))
}

fn level(verbosity: usize) -> log::LevelFilter {
    if let Ok(v) = std::env::var("WPS_EMULATOR_LOG") {
        if let Ok(l) = v.parse() {
            return l;
        }
    }
    match verbosity {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    }
}

fn main() {
    // One CPU available (e.g. pinned with taskset): the single-threaded scheduler avoids the
    // work-stealing scheduler's cross-thread bookkeeping on every wake-up.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let runtime = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build();
    match runtime {
        Ok(rt) => rt.block_on(serve()),
        Err(e) => {
            eprintln!("wps-emulator: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    }
}

async fn serve() {
    let (config, verbosity) = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wps-emulator: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let _ = log::set_logger(&StderrLogger);
    log::set_max_level(level(verbosity));
    if config.access_key == DEFAULT_ACCESS_KEY {
        log::info!("using the built-in development access key");
    }
    // Install the handlers before announcing the endpoint: a supervisor may signal right away.
    let shutdown = shutdown_signal();
    let emulator = match Emulator::start(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("wps-emulator: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", emulator.connection_string());
    let _ = out.flush();
    drop(out);
    shutdown.await;
    log::info!("shutting down");
    emulator.shutdown().await;
}

/// Registers SIGINT and SIGTERM now; the returned future completes on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
