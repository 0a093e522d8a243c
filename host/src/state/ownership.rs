//! Key groups and which of them an operator instance owns. A stream key (a keyed scope)
//! belongs to key group `cairn_codec::scoped::key_group(scope, G)`; instance `i` of `N` owns
//! the contiguous groups `[⌊i·G/N⌋, ⌊(i+1)·G/N⌋)` (Flink's assignment). The state core checks
//! every keyed operation against the owned range ([`KeyGroups::check`]), and refuses writes to
//! the operator-wide scope by an instance that does not own every group
//! ([`KeyGroups::check_operator_wide`]): such state cannot be split.

use std::ops::Range;

use cairn_codec::scoped;

use super::StateError;

/// The most key groups a job may have.
pub const MAX_KEY_GROUPS: u32 = 32_768;

/// The key groups of a job and the range of them one instance owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroups {
    count: u32,
    owned: Range<u32>,
}

impl Default for KeyGroups {
    fn default() -> Self {
        Self::all(scoped::DEFAULT_KEY_GROUPS)
    }
}

/// A key-group range that cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyGroupsError {
    /// The number of groups is 0 or above [`MAX_KEY_GROUPS`].
    #[error("{0} key groups: a job has 1 to {MAX_KEY_GROUPS}")]
    Count(u32),
    /// The owned range is empty or reaches past the last group.
    #[error("key groups {}..{} are not a non-empty range within 0..{count}", owned.start, owned.end)]
    Range {
        /// The job's groups.
        count: u32,
        /// The range asked for.
        owned: Range<u32>,
    },
    /// More instances than groups, or none.
    #[error("instance {index} of {instances}: a job of {count} key groups runs 1 to {count} instances")]
    Instance {
        /// The instance asked for.
        index: u32,
        /// How many there are.
        instances: u32,
        /// The job's groups.
        count: u32,
    },
}

impl KeyGroups {
    /// Every one of `count` groups (an instance running alone).
    pub fn all(count: u32) -> Self {
        let count = count.clamp(1, MAX_KEY_GROUPS);
        Self {
            count,
            owned: 0..count,
        }
    }

    /// The groups `owned` of `count`.
    pub fn range(count: u32, owned: Range<u32>) -> Result<Self, KeyGroupsError> {
        if count == 0 || count > MAX_KEY_GROUPS {
            return Err(KeyGroupsError::Count(count));
        }
        if owned.start >= owned.end || owned.end > count {
            return Err(KeyGroupsError::Range { count, owned });
        }
        Ok(Self { count, owned })
    }

    /// The groups instance `index` of `instances` owns: `[⌊i·G/N⌋, ⌊(i+1)·G/N⌋)`.
    pub fn for_instance(count: u32, index: u32, instances: u32) -> Result<Self, KeyGroupsError> {
        Self::split(count, 0..count, index, instances)
    }

    /// The groups instance `index` of `instances` owns when they share the groups `within`
    /// (a shard's, [`crate::cluster`]): `within` cut as [`KeyGroups::for_instance`] cuts all of
    /// them; `within` itself for a single instance.
    pub fn split(count: u32, within: Range<u32>, index: u32, instances: u32) -> Result<Self, KeyGroupsError> {
        let len = within.end.saturating_sub(within.start);
        if instances == 0 || instances > len || index >= instances {
            return Err(KeyGroupsError::Instance {
                index,
                instances,
                count: len,
            });
        }
        let bound = |i: u32| within.start + (u64::from(i) * u64::from(len) / u64::from(instances)) as u32;
        Self::range(count, bound(index)..bound(index + 1))
    }

    /// The job's number of key groups.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The groups owned.
    pub fn owned(&self) -> Range<u32> {
        self.owned.clone()
    }

    /// Whether every group is owned (no keyed operation can be refused).
    pub fn is_all(&self) -> bool {
        self.owned.start == 0 && self.owned.end == self.count
    }

    /// The key group of stream key `scope`.
    pub fn group_of(&self, scope: &str) -> u32 {
        scoped::key_group(scope, self.count)
    }

    /// Refuse `what` (`read`, `write`, `timer`) of `key` in stream key `scope` unless the
    /// scope's group is owned.
    #[inline]
    pub fn check(
        &self,
        what: &'static str,
        scope: &str,
        key: impl FnOnce() -> String,
    ) -> Result<(), StateError> {
        if self.is_all() {
            return Ok(());
        }
        let group = self.group_of(scope);
        if self.owned.contains(&group) {
            return Ok(());
        }
        Err(StateError::NotOwned {
            what,
            scope: scope.to_string(),
            key: key(),
            group,
            groups: self.count,
            owned: self.owned.clone(),
        })
    }
}

impl KeyGroups {
    /// Refuse a write of operator-wide `key` unless every group is owned (parallelism 1).
    #[inline]
    pub fn check_operator_wide(&self, key: impl FnOnce() -> String) -> Result<(), StateError> {
        if self.is_all() {
            return Ok(());
        }
        Err(StateError::OperatorWide {
            key: key(),
            groups: self.count,
            owned: self.owned.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_own_contiguous_ranges_that_cover_every_group_once() {
        for (g, n) in [(128, 1), (128, 3), (128, 128), (7, 3), (32_768, 5)] {
            let ranges: Vec<Range<u32>> = (0..n)
                .map(|i| KeyGroups::for_instance(g, i, n).unwrap().owned())
                .collect();
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges[n as usize - 1].end, g);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert!(w[0].start < w[0].end);
            }
        }
        assert_eq!(KeyGroups::for_instance(128, 1, 4).unwrap().owned(), 32..64);
    }

    #[test]
    fn impossible_ranges_are_refused() {
        assert!(KeyGroups::range(0, 0..0).is_err());
        assert!(KeyGroups::range(8, 3..3).is_err());
        assert!(KeyGroups::range(8, 4..9).is_err());
        assert!(KeyGroups::for_instance(8, 0, 9).is_err());
        assert!(KeyGroups::for_instance(8, 2, 2).is_err());
    }

    #[test]
    fn a_key_outside_the_range_is_refused_with_its_group_and_the_range() {
        let all = KeyGroups::all(8);
        let scope = (0..100)
            .map(|i| format!("k{i}"))
            .find(|s| all.group_of(s) == 5)
            .unwrap();
        let half = KeyGroups::range(8, 0..4).unwrap();
        let err = half.check("write", &scope, || "count".into()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("{scope:?}")) && text.contains("key group 5 of 8"),
            "{text}"
        );
        assert!(text.contains("0..4"), "{text}");
        assert!(
            KeyGroups::range(8, 4..8)
                .unwrap()
                .check("write", &scope, || "count".into())
                .is_ok()
        );
        assert!(all.check("write", &scope, || "count".into()).is_ok());
    }
}
