//! The master's view of its mules: each one's script, pid and respawn time (with the same
//! fork-bomb guard as workers). The forking is in `master/mules.rs`; the process is
//! `crate::mule`.

use std::time::Instant;

use crate::sys::process::Pid;

#[derive(Debug)]
struct Slot {
    script: String,
    pid: Option<Pid>,
    respawn_at: Option<Instant>,
    respawns: u64,
}

pub struct Mules {
    slots: Vec<Slot>,
    respawns: super::respawn::RespawnGuard,
}

impl Mules {
    pub fn new(scripts: &[String]) -> Self {
        Mules {
            slots: scripts
                .iter()
                .map(|script| Slot {
                    script: script.clone(),
                    pid: None,
                    respawn_at: Some(Instant::now()),
                    respawns: 0,
                })
                .collect(),
            respawns: Default::default(),
        }
    }

    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.slots.iter().filter_map(|s| s.pid)
    }

    /// `(index, pid)` of every live mule.
    pub fn live(&self) -> Vec<(usize, Pid)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.pid.map(|pid| (index, pid)))
            .collect()
    }

    pub fn script(&self, index: usize) -> &str {
        &self.slots[index].script
    }

    pub fn respawns(&self, index: usize) -> u64 {
        self.slots[index].respawns
    }

    pub fn spawned(&mut self, index: usize, pid: Pid) {
        self.slots[index].pid = Some(pid);
        self.slots[index].respawn_at = None;
    }

    /// A child exited: `Some(index)` if it was a mule, respawned unless `respawn` is false.
    pub fn exited(&mut self, pid: Pid, respawn: bool) -> Option<usize> {
        let index = self.slots.iter().position(|s| s.pid == Some(pid))?;
        self.slots[index].pid = None;
        if !respawn {
            return Some(index);
        }
        let now = Instant::now();
        self.slots[index].respawns += 1;
        let (at, _) = self.respawns.next(now, self.slots.len());
        self.slots[index].respawn_at = Some(at);
        Some(index)
    }

    pub fn due(&self, now: Instant) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pid.is_none() && s.respawn_at.is_some_and(|at| at <= now))
            .map(|(index, _)| index)
            .collect()
    }
}
