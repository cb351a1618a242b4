//! The auto-update settings (`/api/controller-settings`): whether and when the controller
//! updates the project's inputs and deploys. Stored in the database's controller settings.

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

const SETTINGS_KEY: &str = "auto_update";

/// How often auto-update runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    /// On the listed weekdays.
    Daily,
    /// Once a week on `weekday`.
    Weekly,
    /// Once a month on `day_of_month`.
    Monthly,
    /// Once a month on the `nth_weekday` `weekday` (e.g. the last Friday).
    MonthlyWeekday,
}

/// When auto-update runs (upstream's shape, unused fields as `null`; times are UTC, weekday 0
/// is Monday).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// How often.
    pub frequency: Frequency,
    /// `HH:MM` in UTC.
    pub time: String,
    /// Weekdays for `daily` (0 = Monday … 6 = Sunday).
    #[serde(default)]
    pub weekdays: Option<Vec<u8>>,
    /// The weekday for `weekly` and `monthly_weekday`.
    #[serde(default)]
    pub weekday: Option<u8>,
    /// The day for `monthly` (1–28).
    #[serde(default)]
    pub day_of_month: Option<u8>,
    /// Which occurrence for `monthly_weekday`: 1–5, or -1 for the last.
    #[serde(default)]
    pub nth_weekday: Option<i8>,
}

impl Default for Schedule {
    /// Upstream's fallback: Monday to Thursday at 03:00 UTC.
    fn default() -> Self {
        Schedule {
            frequency: Frequency::Daily,
            time: "03:00".to_owned(),
            weekdays: Some(vec![0, 1, 2, 3]),
            weekday: None,
            day_of_month: None,
            nth_weekday: None,
        }
    }
}

/// The controller's auto-update settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AutoUpdateSettings {
    /// Whether auto-update runs.
    pub auto_update_enabled: bool,
    /// When.
    pub auto_update_schedule: Schedule,
}

impl Schedule {
    /// The schedule with only the fields its frequency uses.
    pub fn normalized(self) -> Schedule {
        let [weekdays, weekday, day_of_month, nth_weekday] = match self.frequency {
            Frequency::Daily => [true, false, false, false],
            Frequency::Weekly => [false, true, false, false],
            Frequency::Monthly => [false, false, true, false],
            Frequency::MonthlyWeekday => [false, true, false, true],
        };
        Schedule {
            weekdays: self.weekdays.filter(|_| weekdays),
            weekday: self.weekday.filter(|_| weekday),
            day_of_month: self.day_of_month.filter(|_| day_of_month),
            nth_weekday: self.nth_weekday.filter(|_| nth_weekday),
            ..self
        }
    }

    /// Every problem of the schedule (upstream answers these with 422).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let valid_time = self.time.split_once(':').is_some_and(|(h, m)| {
            h.len() == 2
                && m.len() == 2
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        });
        if !valid_time {
            problems.push(format!("time `{}` must be HH:MM (UTC)", self.time));
        }
        let weekday_ok = |d: &u8| *d <= 6;
        match self.frequency {
            Frequency::Daily => match &self.weekdays {
                Some(days) if !days.is_empty() && days.iter().all(weekday_ok) => {}
                _ => problems.push("daily needs weekdays (0 = Monday … 6 = Sunday)".to_owned()),
            },
            Frequency::Weekly => {
                if !self.weekday.as_ref().is_some_and(weekday_ok) {
                    problems.push("weekly needs a weekday (0 = Monday … 6 = Sunday)".to_owned());
                }
            }
            Frequency::Monthly => {
                if !self.day_of_month.is_some_and(|d| (1..=28).contains(&d)) {
                    problems.push("monthly needs day_of_month between 1 and 28".to_owned());
                }
            }
            Frequency::MonthlyWeekday => {
                if !self
                    .nth_weekday
                    .is_some_and(|n| n == -1 || (1..=5).contains(&n))
                {
                    problems.push("monthly_weekday needs nth_weekday 1–5 or -1 (last)".to_owned());
                }
                if !self.weekday.as_ref().is_some_and(weekday_ok) {
                    problems.push(
                        "monthly_weekday needs a weekday (0 = Monday … 6 = Sunday)".to_owned(),
                    );
                }
            }
        }
        problems
    }
}

impl AutoUpdateSettings {
    /// The stored settings, or the defaults (a stored value that does not parse counts as unset,
    /// as upstream).
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(store
            .get_setting(SETTINGS_KEY)?
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default())
    }

    /// Stores the settings, without the fields the schedule's frequency does not use, and
    /// returns what was stored.
    pub fn save(mut self, store: &dyn Store) -> Result<Self, StoreError> {
        self.auto_update_schedule = self.auto_update_schedule.normalized();
        let value = serde_json::to_value(&self).unwrap_or_default();
        store.set_setting(SETTINGS_KEY, &value)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_checked_like_upstream() {
        assert!(Schedule::default().problems().is_empty());
        let weekly = Schedule {
            frequency: Frequency::Weekly,
            weekday: None,
            ..Schedule::default()
        };
        assert_eq!(
            weekly.problems(),
            vec!["weekly needs a weekday (0 = Monday … 6 = Sunday)"]
        );
        let monthly = Schedule {
            frequency: Frequency::Monthly,
            day_of_month: Some(31),
            time: "25:00".into(),
            ..Schedule::default()
        };
        assert_eq!(monthly.problems().len(), 2);
        let last_friday = Schedule {
            frequency: Frequency::MonthlyWeekday,
            nth_weekday: Some(-1),
            weekday: Some(4),
            ..Schedule::default()
        };
        assert!(last_friday.problems().is_empty());
    }

    #[test]
    fn settings_round_trip_through_the_store() {
        let store = crate::store::SqliteStore::open_in_memory().unwrap();
        assert_eq!(
            AutoUpdateSettings::load(&store).unwrap(),
            AutoUpdateSettings::default()
        );
        let settings = AutoUpdateSettings {
            auto_update_enabled: true,
            ..Default::default()
        };
        let stored = settings.clone().save(&store).unwrap();
        assert_eq!(stored, settings);
        assert_eq!(AutoUpdateSettings::load(&store).unwrap(), settings);
        let mut odd = AutoUpdateSettings::default();
        odd.auto_update_schedule.weekday = Some(9);
        let stored = odd.save(&store).unwrap();
        assert_eq!(
            stored.auto_update_schedule.weekday, None,
            "unused fields are dropped"
        );
    }
}
