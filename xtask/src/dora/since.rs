//! `--since 30d`: how far back from the newest record the report looks.

use std::fmt;
use std::str::FromStr;

use crate::model::sha::printable;

/// A positive whole number of hours (`h`), days (`d`) or weeks (`w`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Since {
    amount: u32,
    unit: char,
}

impl Since {
    pub fn seconds(self) -> i64 {
        let unit = match self.unit {
            'h' => 3_600,
            'd' => 86_400,
            _ => 7 * 86_400,
        };
        i64::from(self.amount) * unit
    }
}

impl Default for Since {
    fn default() -> Since {
        Since {
            amount: 30,
            unit: 'd',
        }
    }
}

impl FromStr for Since {
    type Err = String;

    fn from_str(s: &str) -> Result<Since, String> {
        let bad = || {
            format!(
                "`{}` is not a period: give a whole number and h, d or w, e.g. 30d, 12h, 8w",
                printable(s)
            )
        };
        let unit = s.chars().last().ok_or_else(bad)?;
        if !matches!(unit, 'h' | 'd' | 'w') {
            return Err(bad());
        }
        let digits = &s[..s.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let amount: u32 = digits.parse().map_err(|_| bad())?;
        // Ten years at most: a report further back means a typo.
        let one = Since { amount: 1, unit }.seconds();
        if amount == 0 || i64::from(amount) * one > 3_650 * 86_400 {
            return Err(format!(
                "`{s}` is out of range: give a period between 1h and 3650d"
            ));
        }
        Ok(Since { amount, unit })
    }
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hours_days_and_weeks_and_refuses_the_rest() {
        assert_eq!("30d".parse::<Since>().map(Since::seconds), Ok(30 * 86_400));
        assert_eq!("12h".parse::<Since>().map(Since::seconds), Ok(12 * 3_600));
        assert_eq!("2w".parse::<Since>().map(Since::seconds), Ok(14 * 86_400));
        for bad in [
            "", "30", "d", "0d", "-1d", "1.5d", "30 d", "30m", "99999d", "３0d",
        ] {
            let err = bad.parse::<Since>().expect_err(bad);
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
