//! After `fork`, clients inherited from the parent fail clearly instead of hanging, and the
//! child gets a fresh runtime.

use std::time::Duration;

use webpubsub_client::{Client, ClientOptions, Credential, Error};

#[test]
fn inherited_clients_fail_and_the_child_gets_a_new_runtime() {
    // Create the parent's runtime and a client on it.
    let (client, _events) = Client::with_channel(
        Credential::Url("ws://127.0.0.1:9/client/hubs/h?access_token=x".into()),
        ClientOptions::default(),
    );
    let parent_pid = webpubsub_client::runtime::current_pid();
    assert_eq!(webpubsub_client::runtime::runtime_pid(), Some(parent_pid));

    // SAFETY: the child only runs this test's code and leaves with _exit; no other test runs
    // in this binary, so no lock of the library is held by another thread at fork time.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(|| {
            assert!(webpubsub_client::runtime::forked_since(parent_pid));
            let old = client.clone();
            let r = webpubsub_client::runtime::block_on(async move {
                tokio::time::timeout(Duration::from_secs(5), old.start()).await
            });
            let started = r.expect("an inherited client answers at once instead of hanging");
            assert!(matches!(started, Err(Error::Connection { ref message, .. }) if message.contains("fork")));
            // The child's runtime is new and works.
            assert_eq!(
                webpubsub_client::runtime::runtime_pid(),
                Some(webpubsub_client::runtime::current_pid())
            );
            assert_eq!(webpubsub_client::runtime::block_on(async { 41 + 1 }), 42);
        })
        .map(|_| 0)
        .unwrap_or(1);
        // SAFETY: ends the child without running the parent's destructors or test harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child created above.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status), "child did not exit normally");
    assert_eq!(libc::WEXITSTATUS(status), 0, "child assertions failed");
}
