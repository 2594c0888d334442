//! The catalogue of injected faults, chosen per request by `mock_fault` or `--fault-rate`.

use std::fmt;
use std::str::FromStr;

/// A misbehaviour the simulator can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `"500"`: HTTP 500 with a vLLM `InternalServerError` body.
    InternalError,
    /// `"503"`: HTTP 503 with a `ServiceUnavailableError` body.
    Unavailable,
    /// `"429"`: HTTP 429 with `Retry-After: 1` and a `RateLimitError` body.
    RateLimited,
    /// `"reset"`: the connection is dropped (mid-stream, or instead of a response).
    Reset,
    /// `"reset:<n>"`: like `reset`, a stream being dropped after exactly `n` events
    /// (0: right after the response head).
    ResetAfter(usize),
    /// `"malformed"`: an invalid JSON chunk mid-stream, or a truncated JSON body.
    Malformed,
    /// `"stall"`: the first chunk, then nothing (or no response at all).
    Stall,
    /// `"stream_error"`: vLLM's mid-stream `data: {"error": …}` event, then `[DONE]`.
    StreamError,
    /// `"slow:<ms>"`: this much extra latency before answering.
    Slow(u64),
    /// `"late_end:<ms>"`: a stream's body ends this long after its `[DONE]`, as from a
    /// server that writes its last event and the end of the body apart.
    LateEnd(u64),
}

/// The `mock_fault` value was not one of the catalogue's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFault(pub String);

impl fmt::Display for UnknownFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown mock_fault {:?}; expected one of 500, 503, 429, reset, reset:<events>, \
             malformed, stall, stream_error, slow:<ms>, late_end:<ms>",
            self.0
        )
    }
}

impl std::error::Error for UnknownFault {}

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fault = match text.trim() {
            "500" => Self::InternalError,
            "503" => Self::Unavailable,
            "429" => Self::RateLimited,
            "reset" => Self::Reset,
            "malformed" => Self::Malformed,
            "stall" => Self::Stall,
            "stream_error" => Self::StreamError,
            other => {
                let number = |prefix: &str| {
                    other
                        .strip_prefix(prefix)
                        .and_then(|n| n.trim().parse::<u64>().ok())
                };
                match (number("slow:"), number("reset:"), number("late_end:")) {
                    (Some(millis), _, _) => Self::Slow(millis),
                    (_, Some(events), _) => Self::ResetAfter(events as usize),
                    (_, _, Some(millis)) => Self::LateEnd(millis),
                    _ => return Err(UnknownFault(text.to_owned())),
                }
            }
        };
        Ok(fault)
    }
}

/// Extra latency of the `slow` fault when `--fault-rate` picks it.
const RANDOM_SLOW_MS: u64 = 2_000;

/// Faults `--fault-rate` draws from, uniformly.
const RANDOM_FAULTS: [Fault; 8] = [
    Fault::InternalError,
    Fault::Unavailable,
    Fault::RateLimited,
    Fault::Reset,
    Fault::Malformed,
    Fault::Stall,
    Fault::StreamError,
    Fault::Slow(RANDOM_SLOW_MS),
];

/// The fault for one request: the explicit `mock_fault` if given, else a random one
/// with probability `rate`.
pub fn choose(explicit: Option<&str>, rate: f64) -> Result<Option<Fault>, UnknownFault> {
    if let Some(name) = explicit {
        return name.parse().map(Some);
    }
    if rate > 0.0 && crate::random::random_unit() < rate {
        let pick = crate::random::random_u64() % RANDOM_FAULTS.len() as u64;
        return Ok(RANDOM_FAULTS.get(pick as usize).copied());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_catalogue_name() {
        assert_eq!("500".parse(), Ok(Fault::InternalError));
        assert_eq!("503".parse(), Ok(Fault::Unavailable));
        assert_eq!("429".parse(), Ok(Fault::RateLimited));
        assert_eq!("reset".parse(), Ok(Fault::Reset));
        assert_eq!("reset:0".parse(), Ok(Fault::ResetAfter(0)));
        assert_eq!("malformed".parse(), Ok(Fault::Malformed));
        assert_eq!("stall".parse(), Ok(Fault::Stall));
        assert_eq!("stream_error".parse(), Ok(Fault::StreamError));
        assert_eq!("slow:250".parse(), Ok(Fault::Slow(250)));
        assert_eq!(" slow: 0 ".parse(), Ok(Fault::Slow(0)));
        assert_eq!("late_end:300".parse(), Ok(Fault::LateEnd(300)));
        assert_eq!("stall ".parse(), Ok(Fault::Stall));
    }

    #[test]
    fn rejects_unknown_names() {
        for bad in ["", "404", "slow", "slow:", "slow:-1", "slow:abc", "RESET"] {
            let parsed: Result<Fault, _> = bad.parse();
            assert_eq!(parsed, Err(UnknownFault(bad.to_owned())), "{bad:?}");
        }
        assert!(UnknownFault("x".into()).to_string().contains("slow:<ms>"));
    }

    #[test]
    fn explicit_fault_wins_and_rate_zero_never_fires() {
        assert_eq!(choose(Some("429"), 0.0), Ok(Some(Fault::RateLimited)));
        assert!(choose(Some("nope"), 1.0).is_err());
        for _ in 0..1000 {
            assert_eq!(choose(None, 0.0), Ok(None));
        }
    }

    #[test]
    fn rate_one_always_fires() {
        for _ in 0..1000 {
            let fault = choose(None, 1.0).ok().flatten();
            assert!(fault.is_some_and(|f| RANDOM_FAULTS.contains(&f)));
        }
    }
}
