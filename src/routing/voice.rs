//! Voice.
use super::validate::{Model, Problem};
use super::CompiledRouting;
#[derive(Debug, Default)]
pub struct RegexInterner {}
#[derive(Debug)]
pub struct CompiledVoice {}
#[derive(Debug)]
pub struct CompiledProxy {}
pub struct Destination<'a>(&'a str);
impl<'a> Destination<'a> {
    pub fn parse(to: &'a str) -> Result<Destination<'a>, LookupError> { Ok(Destination(to)) }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError { pub parameter: String, pub message: String }
pub struct VoiceAnswer<'a> { pub route: Option<VoiceRoute<'a>>, pub fallbacks: Vec<VoiceRoute<'a>> }
impl VoiceAnswer<'_> { pub fn none() -> Self { VoiceAnswer { route: None, fallbacks: vec![] } } }
pub struct VoiceRoute<'a> { pub proxy: &'a CompiledProxy }
pub fn check_supplied_headers(_h: &[(&str, &str)]) -> Result<(), LookupError> { Ok(()) }
impl CompiledVoice {
    pub fn resolve<'a>(&'a self, _d: &Destination<'_>, _s: &[(&str, &str)]) -> VoiceAnswer<'a> { VoiceAnswer::none() }
}
pub(crate) fn compile_model(_m: Model, _i: &mut RegexInterner) -> Result<CompiledRouting, Vec<Problem>> { Err(vec![]) }
