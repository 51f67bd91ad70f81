//! The lifecycle of one vassal as a pure state machine: events in, at most one action out.
//!
//! The governor feeds it what happened (a message on the vassal's channel, its exit, a change
//! of its file, an emperor-wide signal) and carries out the returned [`Action`]. Keeping the
//! rules here, free of processes and clocks, is what lets them be tested case by case.

use std::time::Duration;

use super::backoff::throttle_delay;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Spawned, not yet `READY=1`.
    Starting,
    /// Workers have loaded the app and accept.
    Ready,
    /// Sent `RELOADING=1` (or was sent SIGHUP); still serving with its old workers.
    Reloading,
    /// Asked to stop (SIGTERM sent); SIGKILLed after `reload-mercy`.
    Stopping,
    /// Exited with a config error; waits for its file to change (or an emperor SIGHUP).
    Failed,
    /// Died before it became ready; respawned after a growing delay.
    Throttled,
    /// On demand: no process; its socket is watched for the first connection.
    Waiting,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Reloading => "reloading",
            State::Stopping => "stopping",
            State::Failed => "failed",
            State::Throttled => "throttled",
            State::Waiting => "waiting",
        }
    }

    /// A process exists for this vassal.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            State::Starting | State::Ready | State::Reloading | State::Stopping
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a vassal process ended, from its exit code (the vassal contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: it stopped because it was asked to (or chose to).
    Clean,
    /// 1: its config is broken; retrying without an edit would fail the same way.
    ConfigError,
    /// 22: the app failed to import.
    ImportError,
    /// Any other code, or a signal.
    Crashed,
}

impl Exit {
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        match status.code() {
            Some(0) => Exit::Clean,
            Some(1) => Exit::ConfigError,
            Some(22) => Exit::ImportError,
            _ => Exit::Crashed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `READY=1` on the channel.
    Ready,
    /// `RELOADING=1` on the channel (a reload the vassal started itself, e.g. touch-reload).
    Reloading,
    /// The process was reaped.
    Exited(Exit),
    /// The spawn itself failed (exec error, fd exhaustion).
    SpawnFailed,
    /// The file's content, mtime or inode changed, or it reappeared while stopping.
    Changed,
    /// The file is gone.
    Removed,
    /// Emperor SIGHUP.
    ReloadAll,
    /// Emperor shutdown.
    StopAll,
    /// A connection arrived on an on-demand vassal's socket.
    Connection,
    /// The throttle delay has passed.
    RetryDue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a new vassal process.
    Spawn,
    /// SIGHUP the vassal: graceful reload.
    Reload,
    /// SIGTERM the vassal and arm the `reload-mercy` SIGKILL.
    Stop,
    /// Spawn again after this delay.
    RetryAfter(Duration),
    /// The vassal is gone for good: drop it from the table.
    Forget,
}

/// Throttle settings (`emperor-throttle`, `emperor-max-throttle`).
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub base: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: State,
    /// Consecutive deaths before `READY=1`; reset by readiness or an edit of the file.
    pub failures: u32,
    /// A reload was asked for while the vassal could not take one (still starting, or already
    /// reloading); it is sent as soon as the vassal is ready.
    pub reload_pending: bool,
    /// The file came back while the vassal was stopping: start it again once it has exited.
    pub restart_after_stop: bool,
    /// An on-demand vassal: after serving it goes back to [`State::Waiting`], not respawned.
    pub on_demand: bool,
}

impl Lifecycle {
    /// A vassal whose file was just found; the caller spawns it.
    pub fn new() -> (Self, Action) {
        let life = Lifecycle {
            state: State::Starting,
            failures: 0,
            reload_pending: false,
            restart_after_stop: false,
            on_demand: false,
        };
        (life, Action::Spawn)
    }

    /// An on-demand vassal whose socket was just bound: no process until a connection.
    pub fn waiting() -> Self {
        Lifecycle {
            state: State::Waiting,
            failures: 0,
            reload_pending: false,
            restart_after_stop: false,
            on_demand: true,
        }
    }

    pub fn handle(&mut self, event: Event, throttle: Throttle) -> Option<Action> {
        use Event as E;
        use State as S;
        match (self.state, event) {
            (S::Starting | S::Reloading, E::Ready) => {
                self.failures = 0;
                self.became_ready()
            }
            (S::Ready, E::Ready) => None,
            (S::Ready, E::Reloading) => {
                self.state = S::Reloading;
                None
            }
            (S::Ready, E::Changed | E::ReloadAll) => {
                self.state = S::Reloading;
                Some(Action::Reload)
            }
            (S::Starting | S::Reloading, E::Changed) => {
                self.failures = 0;
                self.reload_pending = true;
                None
            }
            (S::Starting | S::Reloading, E::ReloadAll) => {
                self.reload_pending = true;
                None
            }
            (S::Starting | S::Ready | S::Reloading, E::Removed | E::StopAll) => {
                self.state = S::Stopping;
                self.reload_pending = false;
                Some(Action::Stop)
            }
            // Died before it ever became ready: a crash loop unless the file changed meanwhile.
            (S::Starting, E::Exited(exit)) => {
                if self.reload_pending {
                    return Some(self.respawn_now());
                }
                self.failures = self.failures.saturating_add(1);
                if exit == Exit::ConfigError {
                    self.state = S::Failed;
                    None
                } else {
                    self.throttled(throttle)
                }
            }
            (S::Starting, E::SpawnFailed) => {
                self.reload_pending = false;
                self.failures = self.failures.saturating_add(1);
                self.throttled(throttle)
            }
            // It was serving: replace it at once, as uWSGI does. A vassal that keeps dying
            // right after startup is still bounded by its own startup time, and a death before
            // readiness moves it into the throttled path above.
            // On demand: it served and left (`die-on-idle`, or died): the next connection
            // starts it again.
            (S::Ready | S::Reloading, E::Exited(_)) if self.on_demand => {
                self.state = S::Waiting;
                self.reload_pending = false;
                None
            }
            (S::Ready | S::Reloading, E::Exited(_)) => Some(self.respawn_now()),
            (S::Waiting, E::Connection) => {
                self.state = S::Starting;
                Some(Action::Spawn)
            }
            // An edit of an idle on-demand vassal only takes effect at its next start.
            (S::Waiting, E::Changed | E::ReloadAll) => None,
            (S::Waiting, E::Removed | E::StopAll) => Some(Action::Forget),
            (S::Stopping, E::Exited(_) | E::SpawnFailed) => {
                if self.restart_after_stop {
                    Some(self.respawn_now())
                } else {
                    Some(Action::Forget)
                }
            }
            (S::Stopping, E::Changed) => {
                self.restart_after_stop = true;
                None
            }
            (S::Stopping, E::Removed | E::StopAll) => {
                self.restart_after_stop = false;
                None
            }
            (S::Failed | S::Throttled, E::Changed | E::ReloadAll) => Some(self.respawn_now()),
            (S::Throttled, E::RetryDue) => {
                self.state = S::Starting;
                Some(Action::Spawn)
            }
            (S::Failed | S::Throttled, E::Removed | E::StopAll) => Some(Action::Forget),
            // Everything else is stale or meaningless in this state: a late message from a
            // process that is gone, a retry timer that lost its purpose, a STATUS-only update.
            _ => None,
        }
    }

    fn became_ready(&mut self) -> Option<Action> {
        if self.reload_pending {
            self.reload_pending = false;
            self.state = State::Reloading;
            Some(Action::Reload)
        } else {
            self.state = State::Ready;
            None
        }
    }

    fn respawn_now(&mut self) -> Action {
        self.state = State::Starting;
        self.failures = 0;
        self.reload_pending = false;
        self.restart_after_stop = false;
        Action::Spawn
    }

    fn throttled(&mut self, throttle: Throttle) -> Option<Action> {
        self.state = State::Throttled;
        Some(Action::RetryAfter(throttle_delay(
            self.failures,
            throttle.base,
            throttle.max,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THROTTLE: Throttle = Throttle {
        base: Duration::from_secs(1),
        max: Duration::from_secs(180),
    };

    /// Runs `events` from a fresh vassal and checks the state and action after each one.
    fn check(steps: &[(Event, State, Option<Action>)]) {
        let (mut life, first) = Lifecycle::new();
        assert_eq!(first, Action::Spawn);
        for (idx, (event, state, action)) in steps.iter().enumerate() {
            let got = life.handle(*event, THROTTLE);
            assert_eq!(
                (life.state, got),
                (*state, *action),
                "step {idx}: {event:?} (all steps: {steps:?})"
            );
        }
    }

    use Action::*;
    use Event as E;
    use State::*;

    fn after(secs: u64) -> Option<Action> {
        Some(RetryAfter(Duration::from_secs(secs)))
    }

    #[test]
    fn happy_path() {
        check(&[(E::Ready, Ready, None)]);
        check(&[
            (E::Ready, Ready, None),
            (E::Changed, Reloading, Some(Reload)),
            (E::Ready, Ready, None),
            (E::Removed, Stopping, Some(Stop)),
            (E::Exited(Exit::Clean), Stopping, Some(Forget)),
        ]);
        check(&[
            (E::Ready, Ready, None),
            (E::Reloading, Reloading, None),
            (E::Ready, Ready, None),
        ]);
    }

    #[test]
    fn crash_loop_backs_off_and_an_edit_retries_at_once() {
        check(&[
            (E::Exited(Exit::Crashed), Throttled, after(1)),
            (E::RetryDue, Starting, Some(Spawn)),
            (E::Exited(Exit::ImportError), Throttled, after(2)),
            (E::RetryDue, Starting, Some(Spawn)),
            (E::Exited(Exit::Clean), Throttled, after(4)),
            (E::Changed, Starting, Some(Spawn)),
            (E::Exited(Exit::Crashed), Throttled, after(1)),
            (E::ReloadAll, Starting, Some(Spawn)),
            (E::Ready, Ready, None),
        ]);
        check(&[(E::SpawnFailed, Throttled, after(1))]);
    }

    #[test]
    fn config_error_waits_for_an_edit() {
        check(&[
            (E::Exited(Exit::ConfigError), Failed, None),
            (E::RetryDue, Failed, None),
            (E::Changed, Starting, Some(Spawn)),
            (E::Ready, Ready, None),
        ]);
        check(&[
            (E::Exited(Exit::ConfigError), Failed, None),
            (E::Removed, Failed, Some(Forget)),
        ]);
    }

    #[test]
    fn a_serving_vassal_that_dies_is_replaced_at_once() {
        check(&[
            (E::Ready, Ready, None),
            (E::Exited(Exit::Crashed), Starting, Some(Spawn)),
            (E::Exited(Exit::Crashed), Throttled, after(1)),
        ]);
        check(&[
            (E::Ready, Ready, None),
            (E::ReloadAll, Reloading, Some(Reload)),
            (E::Exited(Exit::Crashed), Starting, Some(Spawn)),
        ]);
    }

    #[test]
    fn reloads_asked_too_early_are_deferred_not_lost() {
        check(&[
            (E::Changed, Starting, None),
            (E::Ready, Reloading, Some(Reload)),
            (E::Ready, Ready, None),
        ]);
        check(&[
            (E::Ready, Ready, None),
            (E::Changed, Reloading, Some(Reload)),
            (E::Changed, Reloading, None),
            (E::Ready, Reloading, Some(Reload)),
            (E::Ready, Ready, None),
        ]);
        // An edit while starting that then crashes: the edit may be the fix, so retry now.
        check(&[
            (E::Changed, Starting, None),
            (E::Exited(Exit::Crashed), Starting, Some(Spawn)),
        ]);
    }

    #[test]
    fn stopping() {
        check(&[
            (E::Removed, Stopping, Some(Stop)),
            (E::Ready, Stopping, None),
            (E::Changed, Stopping, None),
            (E::Exited(Exit::Clean), Starting, Some(Spawn)),
        ]);
        check(&[
            (E::Ready, Ready, None),
            (E::StopAll, Stopping, Some(Stop)),
            (E::ReloadAll, Stopping, None),
            (E::Exited(Exit::Crashed), Stopping, Some(Forget)),
        ]);
        check(&[
            (E::Exited(Exit::Crashed), Throttled, after(1)),
            (E::StopAll, Throttled, Some(Forget)),
        ]);
    }

    #[test]
    fn an_on_demand_vassal_waits_starts_on_a_connection_and_returns_to_waiting() {
        let mut life = Lifecycle::waiting();
        let mut step = |event, state, action| {
            assert_eq!(
                (life.handle(event, THROTTLE), life.state),
                (action, state),
                "{event:?}"
            );
        };
        step(E::Changed, Waiting, None);
        step(E::Connection, Starting, Some(Spawn));
        step(E::Connection, Starting, None);
        step(E::Ready, Ready, None);
        step(E::Exited(Exit::Clean), Waiting, None);
        step(E::Connection, Starting, Some(Spawn));
        step(E::Ready, Ready, None);
        step(E::Exited(Exit::Crashed), Waiting, None);
        step(E::Removed, Waiting, Some(Forget));
    }
}
