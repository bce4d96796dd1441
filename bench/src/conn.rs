//! The client operations every scenario needs, implemented once per client under test.

use crate::common::{BenchResult, Counter};

/// One connected client. `received` counts group messages delivered to it.
#[allow(async_fn_in_trait)]
pub trait Conn: Sized {
    /// Connects with `json.reliable.webpubsub.azure.v1` when `reliable`, else `json.webpubsub.azure.v1`.
    async fn open(url: &str, reliable: bool) -> BenchResult<Self>;
    fn received(&self) -> &Counter;
    fn connection_id(&self) -> Option<String>;
    async fn join(&self, group: &str) -> BenchResult<()>;
    /// Fire-and-forget when `!acked`; otherwise returns once the service acked.
    async fn send(&self, group: &str, data: &str, acked: bool) -> BenchResult<()>;
    /// `count` fire-and-forget sends as fast as the client takes them.
    async fn send_burst(&self, group: &str, data: &str, count: usize) -> BenchResult<()> {
        for _ in 0..count {
            self.send(group, data, false).await?;
        }
        Ok(())
    }
    /// `count` acked sends with at most `window` waiting for their ack.
    async fn send_window(
        &self,
        group: &str,
        data: &str,
        count: usize,
        window: usize,
    ) -> BenchResult<()>;
    async fn close(self);
}
