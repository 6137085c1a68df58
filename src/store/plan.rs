//! Deciding what a write does, without the database (docs/api.md: writes and revisions).
//!
//! `writes.rs` reads a configuration inside its transaction, asks `plan` what to do with
//! it, and writes exactly what the plan says. Everything decided here — 404 before 412, the
//! precondition, the new state, "nothing changed", the next revision number, the JSON Patch,
//! what the history limit prunes — is a pure function of what the write asks and what was
//! read, and is unit-tested below without a database.

use super::{Action, Condition, StoreError};

/// What a write asks of one configuration.
pub(super) enum Wanted<'a> {
    /// Create or update; `None` keeps what is stored. `action` names the revision when the
    /// caller knows better than create/update (an import).
    Set {
        enabled: Option<bool>,
        configuration: Option<&'a str>,
        action: Option<Action>,
    },
    /// Take revision `revision`'s state. `found` is that revision as read: `None` when it
    /// does not exist (or was pruned), `Some((None, _))` for a delete revision.
    Restore {
        revision: i64,
        found: Option<(Option<String>, bool)>,
    },
    /// Delete an account's configuration.
    Delete,
}

/// A configuration as the write transaction read it.
pub(super) struct Stored<'a> {
    /// The newest revision, a delete's included; `None` if it never existed.
    pub head: Option<i64>,
    /// The current row, `None` if the configuration does not exist now.
    pub row: Option<StoredRow<'a>>,
}

/// The current row of a configuration (plaintext).
pub(super) struct StoredRow<'a> {
    pub configuration: &'a str,
    pub enabled: bool,
    pub revision: i64,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Plan {
    /// A delete of a configuration that does not exist: nothing.
    Absent,
    /// Neither `ConfigurationData` nor `Enabled` would change: nothing.
    Unchanged,
    /// Store this revision (with the row it describes, or the row's removal).
    Write(NewRevision),
}

/// A revision to store, and the configuration's new state.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NewRevision {
    pub revision: i64,
    pub action: Action,
    /// The new `ConfigurationData`; `None` for a delete.
    pub configuration: Option<String>,
    pub enabled: bool,
    pub rollback_of: Option<i64>,
    /// RFC 6902 patch from the current configuration, as JSON text; `None` when there is no
    /// current configuration or no new one.
    pub changes: Option<String>,
}

/// Decides a write of one configuration, in the order the API promises: absence (404)
/// before the precondition (412), then what the new state is.
pub(super) fn plan(
    wanted: Wanted<'_>,
    current: &Stored<'_>,
    condition: &Condition,
) -> Result<Plan, StoreError> {
    let existing = current.row.as_ref().map(|r| r.revision);
    match wanted {
        Wanted::Delete if current.row.is_none() => return Ok(Plan::Absent),
        Wanted::Restore { .. } if current.head.is_none() => return Err(StoreError::NeverExisted),
        _ => {}
    }
    if !condition.holds(existing) {
        return Err(StoreError::PreconditionFailed { current: existing });
    }
    let (configuration, enabled, action, rollback_of) = match wanted {
        Wanted::Set {
            enabled,
            configuration,
            action,
        } => {
            let configuration = match (configuration, &current.row) {
                (Some(c), _) => c.to_owned(),
                (None, Some(row)) => row.configuration.to_owned(),
                (None, None) => return Err(StoreError::MissingConfiguration),
            };
            let enabled = enabled
                .or(current.row.as_ref().map(|r| r.enabled))
                .unwrap_or(true);
            let action = action.unwrap_or(if current.row.is_some() {
                Action::Update
            } else {
                Action::Create
            });
            (Some(configuration), enabled, action, None)
        }
        Wanted::Restore { revision, found } => {
            let (configuration, enabled) = found.ok_or(StoreError::NoSuchRevision(revision))?;
            let configuration = configuration.ok_or(StoreError::RevisionIsDelete(revision))?;
            (
                Some(configuration),
                enabled,
                Action::Rollback,
                Some(revision),
            )
        }
        Wanted::Delete => (None, false, Action::Delete, None),
    };
    if let (Some(row), Some(new)) = (&current.row, &configuration)
        && row.configuration == new
        && row.enabled == enabled
    {
        return Ok(Plan::Unchanged);
    }
    let changes = match (&current.row, &configuration) {
        (Some(row), Some(new)) => json_patch_text(row.configuration, new),
        _ => None,
    };
    Ok(Plan::Write(NewRevision {
        revision: current.head.unwrap_or(0) + 1,
        action,
        configuration,
        enabled,
        rollback_of,
        changes,
    }))
}

/// The oldest revision a configuration keeps once `revision` is stored under a history
/// limit; `None` when nothing is to be pruned.
pub(super) fn oldest_kept(revision: i64, limit: Option<u32>) -> Option<i64> {
    let oldest = revision - i64::from(limit?) + 1;
    (oldest > 1).then_some(oldest)
}

/// The RFC 6902 patch from one stored `ConfigurationData` to another, as JSON text.
fn json_patch_text(from: &str, to: &str) -> Option<String> {
    let from: serde_json::Value = serde_json::from_str(from).ok()?;
    let to: serde_json::Value = serde_json::from_str(to).ok()?;
    serde_json::to_string(&json_patch::diff(&from, &to)).ok()
}

#[cfg(test)]
mod tests {
    use super::super::Tags;
    use super::*;

    const A: &str = r#"{"outbound-sms": [{"destination_network_id": "1"}]}"#;
    const B: &str = r#"{"outbound-sms": [{"destination_network_id": "2"}]}"#;

    fn stored(head: Option<i64>, row: Option<(&'static str, bool, i64)>) -> Stored<'static> {
        Stored {
            head,
            row: row.map(|(configuration, enabled, revision)| StoredRow {
                configuration,
                enabled,
                revision,
            }),
        }
    }

    fn set(configuration: Option<&str>, enabled: Option<bool>) -> Wanted<'_> {
        Wanted::Set {
            enabled,
            configuration,
            action: None,
        }
    }

    fn if_match(revisions: &[i64]) -> Condition {
        Condition {
            if_match: Some(Tags::Revisions(revisions.to_vec())),
            if_none_match: None,
        }
    }

    fn written(plan: Result<Plan, StoreError>) -> NewRevision {
        match plan {
            Ok(Plan::Write(new)) => new,
            other => panic!("expected a write: {other:?}"),
        }
    }

    #[test]
    fn a_create_is_revision_one_enabled_without_changes() {
        let new = written(plan(
            set(Some(A), None),
            &stored(None, None),
            &Condition::default(),
        ));
        assert_eq!(
            new,
            NewRevision {
                revision: 1,
                action: Action::Create,
                configuration: Some(A.into()),
                enabled: true,
                rollback_of: None,
                changes: None,
            }
        );
    }

    #[test]
    fn a_create_after_a_delete_continues_the_numbering() {
        let new = written(plan(
            set(Some(A), Some(false)),
            &stored(Some(7), None),
            &Condition::default(),
        ));
        assert_eq!(
            (new.revision, new.action, new.enabled),
            (8, Action::Create, false)
        );
    }

    #[test]
    fn an_update_keeps_what_it_does_not_give_and_carries_a_patch() {
        let current = stored(Some(3), Some((A, false, 3)));
        let new = written(plan(set(Some(B), None), &current, &Condition::default()));
        assert_eq!(
            (new.revision, new.action, new.enabled),
            (4, Action::Update, false)
        );
        let patch: serde_json::Value = serde_json::from_str(&new.changes.unwrap()).unwrap();
        assert_eq!(
            patch,
            serde_json::json!([{"op": "replace", "path": "/outbound-sms/0/destination_network_id", "value": "2"}])
        );
        // `Enabled` alone: the stored configuration, an empty patch.
        let new = written(plan(set(None, Some(true)), &current, &Condition::default()));
        assert_eq!(new.configuration.as_deref(), Some(A));
        assert_eq!(new.changes.as_deref(), Some("[]"));
    }

    #[test]
    fn the_same_state_again_is_unchanged() {
        let current = stored(Some(2), Some((A, true, 2)));
        for wanted in [
            set(Some(A), None),
            set(None, Some(true)),
            set(Some(A), Some(true)),
        ] {
            assert_eq!(
                plan(wanted, &current, &Condition::default()).unwrap(),
                Plan::Unchanged
            );
        }
    }

    #[test]
    fn a_create_without_configuration_is_refused() {
        assert!(matches!(
            plan(
                set(None, Some(true)),
                &stored(Some(4), None),
                &Condition::default()
            ),
            Err(StoreError::MissingConfiguration)
        ));
    }

    #[test]
    fn a_delete_of_nothing_is_absent_before_any_condition() {
        assert_eq!(
            plan(Wanted::Delete, &stored(Some(5), None), &if_match(&[5])).unwrap(),
            Plan::Absent
        );
        let new = written(plan(
            Wanted::Delete,
            &stored(Some(5), Some((A, true, 5))),
            &if_match(&[5]),
        ));
        assert_eq!(
            new,
            NewRevision {
                revision: 6,
                action: Action::Delete,
                configuration: None,
                enabled: false,
                rollback_of: None,
                changes: None,
            }
        );
    }

    #[test]
    fn a_failed_condition_names_the_current_revision() {
        let current = stored(Some(2), Some((A, true, 2)));
        assert!(matches!(
            plan(set(Some(B), None), &current, &if_match(&[1])),
            Err(StoreError::PreconditionFailed { current: Some(2) })
        ));
        let create_only = Condition {
            if_match: None,
            if_none_match: Some(Tags::Any),
        };
        assert!(matches!(
            plan(set(Some(B), None), &current, &create_only),
            Err(StoreError::PreconditionFailed { current: Some(2) })
        ));
        // A deleted configuration matches no revision number.
        assert!(matches!(
            plan(set(Some(B), None), &stored(Some(3), None), &if_match(&[3])),
            Err(StoreError::PreconditionFailed { current: None })
        ));
    }

    #[test]
    fn a_rollback_checks_existence_then_condition_then_the_revision() {
        let restore = |found| Wanted::Restore { revision: 1, found };
        assert!(matches!(
            plan(restore(None), &stored(None, None), &if_match(&[9])),
            Err(StoreError::NeverExisted)
        ));
        let current = stored(Some(3), Some((B, true, 3)));
        assert!(matches!(
            plan(restore(None), &current, &if_match(&[9])),
            Err(StoreError::PreconditionFailed { current: Some(3) })
        ));
        assert!(matches!(
            plan(restore(None), &current, &Condition::default()),
            Err(StoreError::NoSuchRevision(1))
        ));
        assert!(matches!(
            plan(
                restore(Some((None, false))),
                &current,
                &Condition::default()
            ),
            Err(StoreError::RevisionIsDelete(1))
        ));
        let new = written(plan(
            restore(Some((Some(A.into()), false))),
            &current,
            &Condition::default(),
        ));
        assert_eq!(
            (new.revision, new.action, new.rollback_of, new.enabled),
            (4, Action::Rollback, Some(1), false)
        );
        assert_eq!(new.configuration.as_deref(), Some(A));
        // Back to the current state: nothing to write.
        assert_eq!(
            plan(
                restore(Some((Some(B.into()), true))),
                &current,
                &Condition::default()
            )
            .unwrap(),
            Plan::Unchanged
        );
    }

    #[test]
    fn an_import_names_its_revisions() {
        let wanted = Wanted::Set {
            enabled: Some(true),
            configuration: Some(B),
            action: Some(Action::Import),
        };
        let new = written(plan(
            wanted,
            &stored(Some(1), Some((A, true, 1))),
            &Condition::default(),
        ));
        assert_eq!((new.revision, new.action), (2, Action::Import));
    }

    #[test]
    fn the_history_limit_prunes_only_beyond_it() {
        assert_eq!(oldest_kept(10, None), None);
        assert_eq!(oldest_kept(3, Some(3)), None);
        assert_eq!(oldest_kept(4, Some(3)), Some(2));
        assert_eq!(oldest_kept(10, Some(1)), Some(10));
    }

    #[test]
    fn a_patch_needs_two_json_documents() {
        assert_eq!(json_patch_text("not json", A), None);
        assert_eq!(json_patch_text(A, A).as_deref(), Some("[]"));
    }
}
