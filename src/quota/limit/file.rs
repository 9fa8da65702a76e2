//! The file forms of [`Limit`] and [`Window`]: `{rate: 10, per: 1s, burst: 20}`,
//! `{quota: 10000, window: day}`, `window: 15m`.

use std::time::Duration;

use super::{Limit, Window};

impl<'de> serde::Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Window {
    /// A window as a file writes it: `minute`, `hour`, `day`, `month` or a duration such as
    /// `15m`.
    ///
    /// # Errors
    ///
    /// What was expected, naming the value.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "month" => Self::Month,
            other => Self::Every(parse_duration(other).map_err(|_| {
                format!(
                    "`{other}` is not a window: expected minute, hour, day, month or a duration \
                     such as 15m"
                )
            })?),
        })
    }
}

/// A limit as written, before it is known to be a rate or a quota.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    rate: Option<u64>,
    per: Option<String>,
    burst: Option<u64>,
    quota: Option<u64>,
    window: Option<String>,
    name: Option<String>,
}

impl TryFrom<RawLimit> for Limit {
    type Error = String;

    fn try_from(mut raw: RawLimit) -> Result<Self, String> {
        let name = raw.name.take();
        let limit = match raw {
            RawLimit {
                rate: Some(rate),
                per,
                burst,
                quota: None,
                window: None,
                ..
            } => {
                let per = per.ok_or("a rate needs `per`: the period, such as 1s or 1m")?;
                let limit = Self::rate(rate, parse_duration(&per)?);
                match burst {
                    Some(b) => limit.burst(b),
                    None => limit,
                }
            }
            RawLimit {
                quota: Some(quota),
                window,
                rate: None,
                per: None,
                burst: None,
                ..
            } => {
                let window = window
                    .ok_or("a quota needs `window`: minute, hour, day, month or a duration")?;
                Self::quota(quota, Window::parse(&window)?)
            }
            RawLimit {
                rate: Some(_),
                quota: Some(_),
                ..
            } => {
                return Err(
                    "a limit is a rate (`rate`, `per`, `burst`) or a quota (`quota`, \
                            `window`), not both"
                        .into(),
                );
            }
            RawLimit {
                rate: None,
                quota: None,
                ..
            } => return Err("a limit needs `rate` (with `per`) or `quota` (with `window`)".into()),
            RawLimit { rate: Some(_), .. } => {
                return Err("a rate takes `rate`, `per`, `burst` and `name`, not `window`".into());
            }
            RawLimit { .. } => {
                return Err(
                    "a quota takes `quota`, `window` and `name`, not `per` or `burst`".into(),
                );
            }
        };
        Ok(match name {
            Some(n) => limit.named(n),
            None => limit,
        })
    }
}

/// A duration as a file writes it (`1s`, `500ms`, `15m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|_| {
        format!("`{s}` is not a duration: expected a number and a unit, such as 1s, 500ms or 5m")
    })
}
