//! Runs the built `wps` binary against an in-process emulator on 127.0.0.1, with a deadline
//! on every wait.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use webpubsub_emulator::{Config, Emulator};

/// How long any single wait may take (generous: CI machines are loaded).
pub const DEADLINE: Duration = Duration::from_secs(60);

pub const JOIN: &str = "webpubsub.joinLeaveGroup";
pub const SEND: &str = "webpubsub.sendToGroup";

/// An emulator serving on its own runtime for the life of the test.
pub struct Emu {
    emulator: Option<Emulator>,
    runtime: tokio::runtime::Runtime,
}

impl Emu {
    pub fn start() -> Emu {
        Emu::with_config(Config::default())
    }

    /// An emulator with upstream events going to `upstream` (see [`echo_upstream`]).
    pub fn with_upstream(upstream: String) -> Emu {
        Emu::with_config(Config {
            upstream: Some(upstream),
            ..Config::default()
        })
    }

    fn with_config(config: Config) -> Emu {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let emulator = runtime
            .block_on(Emulator::start(Config { port: 0, ..config }))
            .expect("start the emulator");
        Emu {
            emulator: Some(emulator),
            runtime,
        }
    }

    pub fn connection_string(&self) -> String {
        self.emulator.as_ref().unwrap().connection_string()
    }

    pub fn connections(&self, hub: &str) -> Vec<webpubsub_emulator::ConnectionInfo> {
        self.emulator.as_ref().unwrap().connections(hub)
    }

    /// `wps ARGS` with this emulator's connection string and a clean environment.
    pub fn wps(&self, args: &[&str]) -> Command {
        let mut cmd = wps(args);
        cmd.env("WPS_CONNECTION_STRING", self.connection_string());
        cmd
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            self.runtime.block_on(emulator.shutdown());
        }
    }
}

/// `wps ARGS` without any connection settings from the environment.
pub fn wps(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wps"));
    cmd.args(args);
    for var in [
        "WPS_CLIENT_URL",
        "WPS_CONNECTION_STRING",
        "WPS_LOG",
        "AZURE_LOG_LEVEL",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// What a finished run printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `cmd` to completion with `stdin` as its input; killed and failed after [`DEADLINE`].
pub fn run(cmd: Command, stdin: &str) -> Output {
    let mut proc = Proc::spawn(cmd);
    let mut input = proc.child.stdin.take().expect("stdin");
    let data = stdin.as_bytes().to_vec();
    // A thread, so a child that does not read cannot block the test.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let status = proc.wait();
    let _ = writer.join();
    let stdout = proc.stdout.recv_all();
    let stderr = proc.stderr.recv_all();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Lines of one output stream, read on a thread.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    fn read(stream: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` at the end of the stream; panics after [`DEADLINE`].
    pub fn next(&mut self) -> Option<String> {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line within {DEADLINE:?}: {:?}", self.seen)
            }
        }
    }

    /// Reads lines until one contains `needle`.
    pub fn until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            match self.next() {
                Some(line) if line.contains(needle) => return line,
                Some(_) => {}
                None => panic!("the stream ended without {needle:?}: {:?}", self.seen),
            }
        }
        panic!("no {needle:?} within {DEADLINE:?}: {:?}", self.seen)
    }

    /// Everything up to the end of the stream (after the process exited).
    fn recv_all(&mut self) -> String {
        while self.next().is_some() {}
        self.seen.join("\n")
    }
}

/// A running `wps`, its output read line by line.
pub struct Proc {
    child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wps");
        let stdout = Lines::read(child.stdout.take().unwrap());
        let stderr = Lines::read(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Writes `data` to the process's standard input (kept open until [`Proc::close_stdin`]).
    pub fn write_stdin(&mut self, data: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin is open");
        stdin.write_all(data.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the process's standard input (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions; the child is not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill");
    }

    /// Waits for the exit; kills the process and panics after [`DEADLINE`]. Standard input
    /// stays open meanwhile (`Child::wait` would close it, and a process that reads it would
    /// see the end of its input together with whatever the test did last).
    pub fn wait(&mut self) -> ExitStatus {
        let stdin = self.child.stdin.take();
        let pid = self.child.id();
        let (tx, rx) = mpsc::channel::<()>();
        // Kills the child if the deadline passes first; the wait below then returns.
        let watchdog = thread::spawn(move || {
            if rx.recv_timeout(DEADLINE) == Err(RecvTimeoutError::Timeout) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                return true;
            }
            false
        });
        let status = self.child.wait().expect("wait");
        drop(stdin);
        let _ = tx.send(());
        let killed = watchdog.join().unwrap();
        assert!(
            !killed,
            "wps did not exit within {DEADLINE:?}; stdout {:?}, stderr {:?}",
            self.stdout.seen, self.stderr.seen
        );
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream event handler on 127.0.0.1 that answers every user event and invocation with
/// `echo:` and the request body (text/plain), and accepts every connection. Returns the URL
/// template for `Config::upstream`.
pub fn echo_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            thread::spawn(move || answer(stream));
        }
    });
    format!("http://127.0.0.1:{port}/upstream/{{event}}")
}

fn answer(stream: std::net::TcpStream) {
    let _ = stream.set_read_timeout(Some(DEADLINE));
    let mut reader = BufReader::new(&stream);
    let mut length = 0usize;
    let mut user_event = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if header.starts_with("ce-type:") && header.contains("azure.webpubsub.user.") {
            user_event = true;
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let reply = if user_event {
        [b"echo:".as_slice(), &body].concat()
    } else {
        Vec::new()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nWebHook-Allowed-Origin: *\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let mut stream = &stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply);
}
