//! Collecting a document's problems as validation walks it: each with its JSON pointer,
//! every one reported (docs/routing.md), for `validate` and the members it delegates (`schedule`).

use super::json::{Json, Path};
use super::problem::Problem;

#[derive(Default)]
pub(crate) struct Problems(Vec<Problem>);

impl From<Vec<Problem>> for Problems {
    fn from(problems: Vec<Problem>) -> Problems {
        Problems(problems)
    }
}

impl Problems {
    pub(crate) fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn add(&mut self, pointer: Path<'_>, message: impl Into<String>) {
        self.0.push(Problem {
            pointer: pointer.pointer(),
            message: message.into(),
        });
    }

    pub(crate) fn wrong_type(&mut self, pointer: Path<'_>, found: &Json, expected: &str) {
        self.add(
            pointer,
            format!("invalid type: {}, expected {expected}", found.describe()),
        );
    }

    /// The members of object `v` named in `allowed` (in that order); reports unknown members,
    /// then missing required ones. `None` when `v` is not an object.
    pub(crate) fn members<'a, 'j, const N: usize>(
        &mut self,
        v: &'a Json<'j>,
        pointer: Path<'_>,
        allowed: [&str; N],
        required: &[&str],
    ) -> Option<[Option<&'a Json<'j>>; N]> {
        let Json::Obj(members) = v else {
            self.wrong_type(pointer, v, "an object");
            return None;
        };
        let mut found = [None; N];
        for (key, value) in members {
            match allowed.iter().position(|a| a == key) {
                Some(i) => found[i] = Some(value),
                None => self.add(pointer.member(key), format!("unknown field `{key}`")),
            }
        }
        for name in required {
            let i = allowed
                .iter()
                .position(|a| a == name)
                .expect("required ⊆ allowed");
            if found[i].is_none() {
                self.add(pointer, format!("missing field `{name}`"));
            }
        }
        Some(found)
    }

    pub(crate) fn string<'a>(&mut self, v: &'a Json<'_>, pointer: Path<'_>) -> Option<&'a str> {
        match v {
            Json::Str(s) => Some(s),
            other => {
                self.wrong_type(pointer, other, "a string");
                None
            }
        }
    }

    /// An array of exactly one element: Restcomm's shape for both sections.
    pub(crate) fn single<'a, 'j>(
        &mut self,
        v: &'a Json<'j>,
        pointer: Path<'_>,
    ) -> Option<&'a Json<'j>> {
        match v {
            Json::Arr(items) if items.len() == 1 => Some(&items[0]),
            Json::Arr(items) => {
                self.add(
                    pointer,
                    format!(
                        "invalid length {}, expected an array of exactly one object",
                        items.len()
                    ),
                );
                None
            }
            other => {
                self.wrong_type(pointer, other, "an array of exactly one object");
                None
            }
        }
    }
}
