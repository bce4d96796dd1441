//! Replacing the log sink waits for its calls still running on other threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use webpubsub_client::log::{log, set_logger, Level};

const WAIT: Duration = Duration::from_secs(10);

#[test]
fn replacing_the_sink_waits_for_calls_in_flight() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    set_logger(
        Some(Arc::new(move |_, msg: &str| {
            if msg == "block" {
                entered_tx.send(()).unwrap();
                let _ = release_rx.lock().unwrap().recv_timeout(WAIT);
                done.store(true, Ordering::SeqCst);
            }
        })),
        Level::Info,
    );
    let logger = thread::spawn(|| log(Level::Info, format_args!("block")));
    entered_rx.recv_timeout(WAIT).expect("the sink runs");

    let (returned_tx, returned_rx) = mpsc::channel::<bool>();
    let replacer = thread::spawn({
        let finished = finished.clone();
        move || {
            set_logger(None, Level::Error);
            returned_tx.send(finished.load(Ordering::SeqCst)).unwrap();
        }
    });
    // While the old sink still runs, turning logging off does not return.
    assert!(returned_rx
        .recv_timeout(Duration::from_millis(200))
        .is_err());
    release_tx.send(()).unwrap();
    let sink_had_finished = returned_rx.recv_timeout(WAIT).expect("set_logger returns");
    assert!(sink_had_finished, "set_logger returned before the old sink");
    logger.join().unwrap();
    replacer.join().unwrap();

    // A sink that turns logging off from inside its own call does not wait for itself.
    set_logger(
        Some(Arc::new(|_, _: &str| set_logger(None, Level::Error))),
        Level::Info,
    );
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        log(Level::Info, format_args!("turn off"));
        tx.send(()).unwrap();
    });
    rx.recv_timeout(WAIT).expect("no self-deadlock");
}
