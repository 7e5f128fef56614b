//! What a generated tweet is drawn to carry for one connection, and (with a tweet pool) where
//! the tweets kept for that draw sit.

use std::collections::HashMap;

use crate::generate::{FastRng, Plant, PlantedUser, UserRole};
use crate::params::StreamFilter;
use crate::pool::SlotId;

/// One of a connection's filter items (a phrase, an account in some role, or a box) and one
/// of its languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlantChoice {
    item: usize,
    role: Option<UserRole>,
    lang: Option<usize>,
}

impl PlantChoice {
    pub fn draw(rng: &mut FastRng, filter: &StreamFilter) -> PlantChoice {
        let lang = (!filter.language.is_empty()).then(|| rng.index(filter.language.len()));
        let item = rng.index(filter.item_count());
        let is_account =
            (filter.track.len()..filter.track.len() + filter.follow.len()).contains(&item);
        let role = is_account.then(|| {
            let roll = rng.unit();
            if roll < 0.6 {
                UserRole::Author
            } else if roll < 0.85 {
                UserRole::RetweetedAuthor
            } else {
                UserRole::ReplyTarget
            }
        });
        PlantChoice { item, role, lang }
    }

    /// What the tweet must contain.
    pub fn plant(&self, filter: &StreamFilter) -> Plant {
        let mut plant = Plant {
            lang: self.lang.map(|l| filter.language[l].clone()),
            filter_level: Some(filter.filter_level),
            ..Plant::default()
        };
        let (tracks, follows) = (filter.track.len(), filter.follow.len());
        if self.item < tracks {
            plant.phrases.push(filter.track[self.item].clone());
        } else if self.item < tracks + follows {
            plant.user = Some(PlantedUser {
                id: filter.follow[self.item - tracks],
                role: self.role.unwrap_or(UserRole::Author),
            });
        } else {
            plant.location = Some(filter.locations[self.item - tracks - follows]);
        }
        plant
    }

    /// A number for each distinct choice of one filter: below [`index_bound`] of it.
    fn index(&self, filter: &StreamFilter) -> usize {
        let role = match self.role {
            None => 0,
            Some(UserRole::Author) => 1,
            Some(UserRole::RetweetedAuthor) => 2,
            Some(UserRole::ReplyTarget) => 3,
        };
        let lang = self.lang.map_or(0, |l| l + 1);
        (self.item * 4 + role) * (filter.language.len() + 1) + lang
    }
}

fn index_bound(filter: &StreamFilter) -> usize {
    filter.item_count() * 4 * (filter.language.len() + 1)
}

/// A plant's slot in the tweet pool, and whether it was seen full (it stays full).
#[derive(Debug, Clone, Copy)]
pub struct PlantSlot {
    pub slot: SlotId,
    pub full: bool,
}

/// Choices of one connection above which [`PlantSlots`] uses a hash map, not a table.
const DENSE_LIMIT: usize = 4096;

/// The pool slot of each choice drawn for one connection. Finding it is on the path of every
/// pooled tweet, so small filters (the usual case) get a table indexed by choice.
#[derive(Debug, Default)]
pub enum PlantSlots {
    #[default]
    Unused,
    Dense(Vec<Option<PlantSlot>>),
    Sparse(HashMap<usize, PlantSlot>),
}

impl PlantSlots {
    /// The slot of `choice`, found with `slot_for` the first time. `filter` must be the one
    /// every choice of this connection was drawn from.
    pub fn get_or_insert(
        &mut self,
        filter: &StreamFilter,
        choice: PlantChoice,
        slot_for: impl FnOnce() -> SlotId,
    ) -> &mut PlantSlot {
        if matches!(self, PlantSlots::Unused) {
            let bound = index_bound(filter);
            *self = if bound <= DENSE_LIMIT {
                PlantSlots::Dense(vec![None; bound])
            } else {
                PlantSlots::Sparse(HashMap::new())
            };
        }
        let index = choice.index(filter);
        let new = || PlantSlot {
            slot: slot_for(),
            full: false,
        };
        match self {
            PlantSlots::Dense(table) => table[index].get_or_insert_with(new),
            PlantSlots::Sparse(map) => map.entry(index).or_insert_with(new),
            PlantSlots::Unused => unreachable!("set above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::StreamFilter;

    fn filter(track: usize, follow: usize, languages: usize) -> StreamFilter {
        StreamFilter {
            track: (0..track).map(|n| format!("phrase{n}")).collect(),
            follow: (0..follow as u64).map(|n| 1000 + n).collect(),
            language: (0..languages).map(|n| format!("l{n}")).collect(),
            ..StreamFilter::default()
        }
    }

    /// Every distinct draw gets its own slot, and the same draw the same slot, in both kinds
    /// of table.
    fn slots_follow_choices(filter: &StreamFilter) {
        let mut slots = PlantSlots::default();
        let mut rng = FastRng::new(5);
        let mut by_plant: Vec<(String, SlotId)> = Vec::new();
        for _ in 0..2000 {
            let choice = PlantChoice::draw(&mut rng, filter);
            let plant = format!("{:?}", choice.plant(filter));
            let fresh = by_plant.len();
            let slot = slots.get_or_insert(filter, choice, || fresh).slot;
            match by_plant.iter().find(|(p, _)| *p == plant) {
                Some((_, known)) => assert_eq!(slot, *known, "{plant}"),
                None => {
                    assert_eq!(slot, fresh, "a new plant gets a new slot: {plant}");
                    by_plant.push((plant, slot));
                }
            }
        }
        assert!(by_plant.len() > 1);
    }

    /// The slot table built for `filter`, after checking that its slots follow the choices.
    fn slots_for(filter: &StreamFilter) -> PlantSlots {
        slots_follow_choices(filter);
        let mut slots = PlantSlots::default();
        slots.get_or_insert(
            filter,
            PlantChoice::draw(&mut FastRng::new(1), filter),
            || 0,
        );
        slots
    }

    #[test]
    fn a_small_filter_uses_a_table() {
        assert!(matches!(slots_for(&filter(20, 3, 2)), PlantSlots::Dense(_)));
    }

    #[test]
    fn a_large_filter_uses_a_map() {
        assert!(matches!(
            slots_for(&filter(400, 5000, 0)),
            PlantSlots::Sparse(_)
        ));
    }
}
