//! Operator commands, fleet-wide: per region the latest forced state and
//! the latest readmit, whoever made them. Merging is last-writer-wins by
//! [`Stamp`] (hybrid logical clock, then instance name), so every instance
//! that has seen the same commands holds the same winners, in whatever
//! order they arrived. Kept in `state_dir/fleet-commands.json`, replaced by
//! write-then-rename.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::message::{Action, Command};

/// What a command slot holds: forced states and readmits are separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Slot {
    Force,
    Readmit,
}

fn slot(action: Action) -> Slot {
    if action.is_readmit() {
        Slot::Readmit
    } else {
        Slot::Force
    }
}

/// The winning commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommandBook {
    winners: BTreeMap<(String, Slot), Command>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    commands: Vec<Command>,
}

impl CommandBook {
    /// Takes `command` if it is later than the one in its slot; returns
    /// whether it won (and so must be applied).
    pub(crate) fn merge(&mut self, command: &Command) -> bool {
        let key = (command.region.clone(), slot(command.action));
        // One instance never stamps two commands alike; should a peer do
        // it anyway, the action decides, so every order of arrival ends
        // the same.
        match self.winners.get(&key) {
            Some(held) if (&held.stamp, held.action) >= (&command.stamp, command.action) => false,
            _ => {
                self.winners.insert(key, command.clone());
                true
            }
        }
    }

    /// Every winner, by region then slot.
    pub(crate) fn all(&self) -> Vec<Command> {
        self.winners.values().cloned().collect()
    }

    /// Whether `other` holds `command` or a later one in its slot: the
    /// command has arrived there (or was overtaken, which counts too).
    pub(crate) fn covers(others: &[Command], command: &Command) -> bool {
        others.iter().any(|c| {
            c.region == command.region
                && slot(c.action) == slot(command.action)
                && c.stamp >= command.stamp
        })
    }

    pub(crate) fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("fleet-commands.json")
    }

    /// The book saved in `state_dir`; empty (with a log line) when the
    /// file is missing or damaged.
    pub(crate) fn load(state_dir: &Path) -> CommandBook {
        let path = Self::path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return CommandBook::default(),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read fleet commands; starting without them");
                return CommandBook::default();
            }
        };
        match serde_json::from_str::<File>(&text) {
            Ok(file) => {
                let mut book = CommandBook::default();
                for c in &file.commands {
                    book.merge(c);
                }
                book
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "fleet commands file is damaged; starting without it");
                CommandBook::default()
            }
        }
    }

    /// Saves the book in `state_dir`, atomically.
    pub(crate) fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let path = Self::path(state_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&File {
            commands: self.all(),
        })
        .map_err(std::io::Error::other)?;
        std::fs::create_dir_all(state_dir)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::message::Stamp;

    fn cmd(region: &str, action: Action, time: u64, by: &str) -> Command {
        Command {
            region: region.to_owned(),
            action,
            stamp: Stamp {
                time,
                instance: by.to_owned(),
            },
        }
    }

    #[test]
    fn the_later_command_wins_in_any_order_of_arrival() {
        let commands = [
            cmd("us-east-1", Action::Down, 10, "ns2"),
            cmd("us-east-1", Action::Auto, 12, "ns3"),
            cmd("us-east-1", Action::Up, 12, "ns1"),
            cmd("eu-west-1", Action::Down, 11, "ns1"),
            cmd("us-east-1", Action::Readmit, 5, "ns1"),
        ];
        let mut forward = CommandBook::default();
        let mut backward = CommandBook::default();
        for c in &commands {
            forward.merge(c);
        }
        for c in commands.iter().rev() {
            backward.merge(c);
        }
        assert_eq!(forward, backward);
        let all = forward.all();
        // Same time: the instance name breaks the tie (ns3 > ns1).
        assert!(all.contains(&cmd("us-east-1", Action::Auto, 12, "ns3")));
        // A readmit does not displace a forced state, nor the reverse.
        assert!(all.contains(&cmd("us-east-1", Action::Readmit, 5, "ns1")));
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn an_older_or_repeated_command_does_not_win() {
        let mut book = CommandBook::default();
        assert!(book.merge(&cmd("r", Action::Down, 10, "ns1")));
        assert!(!book.merge(&cmd("r", Action::Down, 10, "ns1")));
        assert!(!book.merge(&cmd("r", Action::Up, 9, "ns9")));
        assert!(book.merge(&cmd("r", Action::Up, 11, "ns1")));
    }

    #[test]
    fn coverage_counts_later_commands_in_the_same_slot() {
        let c = cmd("r", Action::Down, 10, "ns1");
        assert!(CommandBook::covers(
            &[cmd("r", Action::Auto, 11, "ns2")],
            &c
        ));
        assert!(CommandBook::covers(std::slice::from_ref(&c), &c));
        assert!(!CommandBook::covers(
            &[cmd("r", Action::Readmit, 20, "ns2")],
            &c
        ));
        assert!(!CommandBook::covers(
            &[cmd("other", Action::Down, 20, "ns2")],
            &c
        ));
    }

    #[test]
    fn saved_and_loaded_and_a_damaged_file_is_survived() {
        let dir = tempfile::tempdir().expect("dir");
        let mut book = CommandBook::default();
        book.merge(&cmd("us-east-1", Action::Down, 10, "ns1"));
        book.save(dir.path()).expect("save");
        assert_eq!(CommandBook::load(dir.path()), book);
        std::fs::write(CommandBook::path(dir.path()), "{ not json").expect("write");
        assert_eq!(CommandBook::load(dir.path()), CommandBook::default());
    }
}
