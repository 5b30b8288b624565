//! SIGTERM and SIGINT, caught from the first instruction.
//!
//! The runner cancels a container action with SIGTERM, and in the container
//! the binary is PID 1, for which the kernel ignores any signal without a
//! handler: without one installed early, a cancel during validation,
//! dispatch or publishing would be lost and the runner would kill the job
//! ten seconds later with nothing reported. [`Termination::install`] runs
//! before the inputs are read; a signal is remembered until the job looks,
//! and every phase of the job races against [`Termination::received`].

use tokio::sync::watch;

/// The first termination signal, once one arrived.
#[derive(Debug, Clone)]
pub struct Termination {
    received: watch::Receiver<Option<&'static str>>,
}

impl Termination {
    /// Installs the handlers. Must run inside the Tokio runtime. Without
    /// handlers (an OS refusing them) the job simply cannot be interrupted
    /// gracefully, which is reported and not fatal.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (sender, received) = watch::channel(None);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            let _ = sender.send(Some(name));
            // Keep the handlers installed: a second signal must not kill
            // the process while it reports the first.
            loop {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
        });
        Ok(Self { received })
    }

    /// A termination that never fires (tests of the library, and the
    /// fallback when handlers cannot be installed).
    pub fn never() -> Self {
        // With its sender gone the channel is closed, which `received`
        // already treats as "no signal will ever come".
        let (_, received) = watch::channel(None);
        Self { received }
    }

    /// The signal, if one has arrived already.
    pub fn signal(&self) -> Option<&'static str> {
        *self.received.borrow()
    }

    /// Resolves when a signal arrives (at once if one already has).
    pub async fn received(&self) -> &'static str {
        let mut received = self.received.clone();
        loop {
            if let Some(name) = *received.borrow_and_update() {
                return name;
            }
            if received.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_sent_before_anyone_waits_is_remembered() {
        let termination = Termination::install().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(termination.signal(), None);
        // The `kill` command sends the signal: raising it in-process would
        // need a libc binding only this test uses.
        let status = std::process::Command::new("kill")
            .args(["-INT", &std::process::id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success());
        let name = tokio::time::timeout(std::time::Duration::from_secs(5), termination.received())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name, "SIGINT");
        assert_eq!(termination.signal(), Some("SIGINT"));
    }

    #[tokio::test]
    async fn never_stays_pending() {
        let termination = Termination::never();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(50), termination.received())
                .await;
        assert!(waited.is_err());
    }
}
