//! The breaker of one proxy (docs/operations.md) as a pure state machine: every event takes the time
//! (unix microseconds) as an argument, nothing here reads a clock, sleeps or does I/O.
//!
//! - `up` → `down` after `failures` consecutive failures or timeouts; a success resets the
//!   count.
//! - `down` → `probing` once `cooldown` has passed since it went down (`tick`).
//! - `probing`: one success → `up`, one failure → `down` for another cool-down.
//! - `down`: a success → `up` at once (an engine reached it); failures change nothing.
//! - Another instance's transition (`apply_remote`) wins when it is newer than the last
//!   transition this breaker made or applied (its cool-down expiries aside, which every
//!   instance derives alike from the shared time it went down).

use crate::routing::Health;

/// What one report or probe says about a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// It answered.
    Success,
    /// A failure or a timeout.
    Failure,
}

/// `MULTIPROVIDER_HEALTH_FAILURES` and `MULTIPROVIDER_HEALTH_COOLDOWN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Consecutive failures that take an `up` proxy `down` (at least 1).
    pub failures: u32,
    /// How long a proxy stays `down` before `probing`, in microseconds.
    pub cooldown_micros: i64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            failures: 5,
            cooldown_micros: 30_000_000,
        }
    }
}

/// A state change: what it was, what it is, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
    pub at: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    state: Health,
    /// Consecutive failures (reset by a success; kept while `down`, for the record).
    failures: u32,
    /// Time of the last state change; `None` before the first.
    since: Option<i64>,
    /// Time of the last change that was not a cool-down expiry: what another instance's
    /// transition must be newer than to win.
    basis: Option<i64>,
    /// Time of the last report or probe.
    last_outcome_at: Option<i64>,
}

impl Breaker {
    pub fn state(&self) -> Health {
        self.state
    }
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }
    pub fn since(&self) -> Option<i64> {
        self.since
    }
    pub fn last_outcome_at(&self) -> Option<i64> {
        self.last_outcome_at
    }

    fn go(&mut self, to: Health, at: i64) -> Transition {
        let from = self.state;
        self.state = to;
        self.since = Some(at);
        Transition { from, to, at }
    }

    /// A report or probe result at `now`.
    pub fn observe(
        &mut self,
        observation: Observation,
        now: i64,
        policy: Policy,
    ) -> Option<Transition> {
        self.last_outcome_at = Some(now);
        match (self.state, observation) {
            (Health::Up, Observation::Success) => {
                self.failures = 0;
                None
            }
            (Health::Down | Health::Probing, Observation::Success) => {
                self.failures = 0;
                self.basis = Some(now);
                Some(self.go(Health::Up, now))
            }
            (Health::Up, Observation::Failure) => {
                self.failures = self.failures.saturating_add(1);
                (self.failures >= policy.failures.max(1)).then(|| {
                    self.basis = Some(now);
                    self.go(Health::Down, now)
                })
            }
            (Health::Probing, Observation::Failure) => {
                self.failures = self.failures.saturating_add(1);
                self.basis = Some(now);
                Some(self.go(Health::Down, now))
            }
            // Down: the engines are told to try it last; their failures say nothing new.
            (Health::Down, Observation::Failure) => None,
        }
    }

    /// Time passing: a `down` proxy whose cool-down is over starts `probing`, as of the end
    /// of its cool-down (so that every instance dates it alike).
    pub fn tick(&mut self, now: i64, policy: Policy) -> Option<Transition> {
        let went_down = self.since?;
        let due = went_down.saturating_add(policy.cooldown_micros);
        (self.state == Health::Down && now >= due).then(|| self.go(Health::Probing, due))
    }

    /// Another instance's transition to `to` at `since`: applied when newer than what this
    /// breaker knows (last writer wins, by the time of the change).
    pub fn apply_remote(&mut self, to: Health, since: i64) -> Option<Transition> {
        if self.basis.is_some_and(|basis| basis >= since) {
            return None;
        }
        self.basis = Some(since);
        if to == Health::Up {
            self.failures = 0;
        }
        if self.state == to {
            self.since = Some(since);
            return None;
        }
        Some(self.go(to, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = 1_000_000;
    const POLICY: Policy = Policy {
        failures: 3,
        cooldown_micros: 30 * S,
    };

    fn observe(b: &mut Breaker, o: Observation, now: i64) -> Option<Health> {
        b.observe(o, now, POLICY).map(|t| t.to)
    }

    #[test]
    fn the_life_of_a_proxy() {
        use Observation::*;
        let mut b = Breaker::default();
        assert_eq!(
            (b.state(), b.since(), b.last_outcome_at()),
            (Health::Up, None, None)
        );
        assert_eq!(observe(&mut b, Failure, S), None);
        assert_eq!(observe(&mut b, Failure, 2 * S), None);
        // A success resets the count.
        assert_eq!(observe(&mut b, Success, 3 * S), None);
        assert_eq!(b.consecutive_failures(), 0);
        assert_eq!(observe(&mut b, Failure, 4 * S), None);
        assert_eq!(observe(&mut b, Failure, 5 * S), None);
        assert_eq!(observe(&mut b, Failure, 6 * S), Some(Health::Down));
        assert_eq!(b.since(), Some(6 * S));
        // Failures while down change nothing, not even the cool-down.
        assert_eq!(observe(&mut b, Failure, 20 * S), None);
        assert_eq!(b.tick(35 * S, POLICY), None);
        let t = b.tick(37 * S, POLICY).unwrap();
        assert_eq!(
            (t.from, t.to, t.at),
            (Health::Down, Health::Probing, 36 * S)
        );
        assert_eq!(b.tick(38 * S, POLICY), None);
        // Probing: one failure → down for another cool-down.
        assert_eq!(observe(&mut b, Failure, 40 * S), Some(Health::Down));
        assert_eq!(b.tick(69 * S, POLICY), None);
        assert_eq!(b.tick(70 * S, POLICY).map(|t| t.to), Some(Health::Probing));
        // Probing: one success → up.
        assert_eq!(observe(&mut b, Success, 71 * S), Some(Health::Up));
        assert_eq!(b.consecutive_failures(), 0);
        // Down, then a success at once → up (an engine reached it).
        for t in 0..3 {
            observe(&mut b, Failure, (80 + t) * S);
        }
        assert_eq!(b.state(), Health::Down);
        assert_eq!(observe(&mut b, Success, 83 * S), Some(Health::Up));
        assert_eq!(b.last_outcome_at(), Some(83 * S));
    }

    #[test]
    fn remote_transitions_win_when_newer() {
        let mut b = Breaker::default();
        assert_eq!(
            b.apply_remote(Health::Down, 10 * S).map(|t| t.to),
            Some(Health::Down)
        );
        // Its own notification coming back, or an older one: nothing.
        assert_eq!(b.apply_remote(Health::Down, 10 * S), None);
        assert_eq!(b.apply_remote(Health::Up, 9 * S), None);
        // The cool-down runs from the shared time.
        assert_eq!(
            b.tick(40 * S, POLICY).map(|t| (t.to, t.at)),
            Some((Health::Probing, 40 * S))
        );
        // A recovery elsewhere that happened before this breaker's cool-down expiry still wins.
        assert_eq!(
            b.apply_remote(Health::Up, 39 * S).map(|t| t.to),
            Some(Health::Up)
        );
        // A local change newer than a remote one keeps it.
        for t in 0..3 {
            b.observe(Observation::Failure, (50 + t) * S, POLICY);
        }
        assert_eq!(b.apply_remote(Health::Up, 45 * S), None);
        assert_eq!(b.state(), Health::Down);
    }

    #[test]
    fn one_failure_is_enough_when_so_configured() {
        let policy = Policy {
            failures: 1,
            cooldown_micros: S,
        };
        let mut b = Breaker::default();
        assert_eq!(
            b.observe(Observation::Failure, 0, policy).map(|t| t.to),
            Some(Health::Down)
        );
    }

    #[derive(Debug, Clone)]
    enum Event {
        Report(bool),
        Tick,
        Remote(u8),
    }

    fn event() -> impl Strategy<Value = (Event, i64)> {
        (
            prop_oneof![
                any::<bool>().prop_map(Event::Report),
                Just(Event::Tick),
                (0u8..3).prop_map(Event::Remote),
            ],
            0i64..20 * S,
        )
    }

    proptest! {
        /// Whatever happens, in whatever order: the invariants of docs/operations.md.
        #[test]
        fn invariants(failures in 1u32..6, cooldown in 1i64..40, events in prop::collection::vec(event(), 0..200)) {
            let policy = Policy { failures, cooldown_micros: cooldown * S };
            let mut b = Breaker::default();
            let mut now = 0i64;
            for (event, step) in events {
                now += step;
                let before = b.clone();
                let transition = match event {
                    Event::Report(ok) => {
                        let o = if ok { Observation::Success } else { Observation::Failure };
                        let t = b.observe(o, now, policy);
                        if ok {
                            // A success always leaves it up with no failures counted.
                            prop_assert_eq!(b.state(), Health::Up);
                            prop_assert_eq!(b.consecutive_failures(), 0);
                        } else {
                            // After a failure it is never probing, and only down when the
                            // count reached the threshold, it was probing, or it was down.
                            prop_assert_ne!(b.state(), Health::Probing);
                            if b.state() == Health::Down {
                                prop_assert!(before.state() != Health::Up
                                    || b.consecutive_failures() >= failures);
                            }
                        }
                        prop_assert_eq!(b.last_outcome_at(), Some(now));
                        t
                    }
                    Event::Tick => {
                        let t = b.tick(now, policy);
                        if let Some(t) = t {
                            // Only down → probing, exactly one cool-down after going down.
                            prop_assert_eq!((t.from, t.to), (Health::Down, Health::Probing));
                            prop_assert_eq!(Some(t.at - policy.cooldown_micros), before.since());
                            prop_assert!(t.at <= now);
                        } else if before.state() == Health::Down {
                            prop_assert!(now < before.since().unwrap() + policy.cooldown_micros);
                        }
                        t
                    }
                    Event::Remote(h) => b.apply_remote(Health::from_u8(h), now),
                };
                // Up means fewer failures than the threshold.
                if b.state() == Health::Up {
                    prop_assert!(b.consecutive_failures() < failures);
                }
                match transition {
                    Some(t) => {
                        prop_assert_eq!(t.from, before.state());
                        prop_assert_eq!(t.to, b.state());
                        prop_assert_ne!(t.from, t.to);
                        prop_assert_eq!(b.since(), Some(t.at));
                    }
                    None => prop_assert!(b.state() == before.state()),
                }
                // Time of the last change never goes backwards.
                prop_assert!(b.since() >= before.since() || matches!(event, Event::Remote(_)));
            }
        }
    }
}
