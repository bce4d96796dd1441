//! Group permissions: plain roles, group-scoped roles, wildcard group patterns and runtime
//! grants/revocations.

use std::collections::HashSet;

/// The two group permissions a connection may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    JoinLeaveGroup,
    SendToGroup,
}

impl Permission {
    /// Parses the REST path value (`joinLeaveGroup`, `sendToGroup`, case-insensitive).
    pub fn parse(s: &str) -> Option<Permission> {
        match s.to_ascii_lowercase().as_str() {
            "joinleavegroup" => Some(Permission::JoinLeaveGroup),
            "sendtogroup" => Some(Permission::SendToGroup),
            _ => None,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Grants {
    all: bool,
    groups: HashSet<String>,
    patterns: Vec<Pattern>,
    denied: HashSet<String>,
}

impl Grants {
    fn allows(&self, group: &str) -> bool {
        if self.denied.contains(group) {
            return false;
        }
        self.all || self.groups.contains(group) || self.patterns.iter().any(|p| p.matches(group))
    }
}

/// Permissions of one connection.
#[derive(Debug, Default, Clone)]
pub struct Permissions {
    join: Grants,
    send: Grants,
}

impl Permissions {
    /// Builds permissions from role strings; unknown roles are ignored.
    pub fn from_roles<S: AsRef<str>>(roles: &[S]) -> Permissions {
        let mut p = Permissions::default();
        for role in roles {
            let role = role.as_ref();
            if role == "webpubsub.joinLeaveGroup" {
                p.join.all = true;
            } else if role == "webpubsub.sendToGroup" {
                p.send.all = true;
            } else if let Some(g) = role.strip_prefix("webpubsub.joinLeaveGroup.") {
                p.join.groups.insert(g.to_string());
            } else if let Some(g) = role.strip_prefix("webpubsub.sendToGroup.") {
                p.send.groups.insert(g.to_string());
            } else if let Some(pat) = role.strip_prefix("webpubsub.joinLeaveGroups.") {
                if let Some(pat) = Pattern::parse(pat) {
                    p.join.patterns.push(pat);
                }
            } else if let Some(pat) = role.strip_prefix("webpubsub.sendToGroups.") {
                if let Some(pat) = Pattern::parse(pat) {
                    p.send.patterns.push(pat);
                }
            }
        }
        p
    }

    fn grants(&self, perm: Permission) -> &Grants {
        match perm {
            Permission::JoinLeaveGroup => &self.join,
            Permission::SendToGroup => &self.send,
        }
    }

    fn grants_mut(&mut self, perm: Permission) -> &mut Grants {
        match perm {
            Permission::JoinLeaveGroup => &mut self.join,
            Permission::SendToGroup => &mut self.send,
        }
    }

    /// Whether the connection may use `perm` on `group`.
    pub fn allows(&self, perm: Permission, group: &str) -> bool {
        self.grants(perm).allows(group)
    }

    /// REST CheckPermission: without a target, only an all-groups grant counts.
    pub fn check(&self, perm: Permission, target: Option<&str>) -> bool {
        match target {
            Some(g) => self.allows(perm, g),
            None => {
                let g = self.grants(perm);
                g.all && g.denied.is_empty()
            }
        }
    }

    /// REST GrantPermission.
    pub fn grant(&mut self, perm: Permission, target: Option<&str>) {
        let g = self.grants_mut(perm);
        match target {
            Some(t) => {
                g.denied.remove(t);
                g.groups.insert(t.to_string());
            }
            None => {
                g.all = true;
                g.denied.clear();
            }
        }
    }

    /// REST RevokePermission: without a target every grant of that kind is removed.
    pub fn revoke(&mut self, perm: Permission, target: Option<&str>) {
        let g = self.grants_mut(perm);
        match target {
            Some(t) => {
                g.groups.remove(t);
                g.denied.insert(t.to_string());
            }
            None => *g = Grants::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    One,
    Star,
    DoubleStar,
}

/// Longest group name a pattern can be asked about (`valid_group_name`); patterns needing
/// more literal characters can never match and are refused when parsed.
const MAX_GROUP_CHARS: usize = 1024;

/// A wildcard group pattern: `?` one char except `.`, `*` any run without `.`, `**` any run,
/// `\` escapes; at most five `*`.
#[derive(Debug, Clone)]
pub struct Pattern(Vec<Token>);

impl Pattern {
    /// Parses a pattern; `None` when it is invalid (trailing `\`, more than five `*`) or needs
    /// more characters than a group name may have.
    pub fn parse(s: &str) -> Option<Pattern> {
        let mut tokens = Vec::new();
        let mut chars = s.chars().peekable();
        let mut stars = 0;
        while let Some(c) = chars.next() {
            match c {
                '\\' => tokens.push(Token::Char(chars.next()?)),
                '?' => tokens.push(Token::One),
                '*' => {
                    if chars.peek() == Some(&'*') {
                        chars.next();
                        stars += 2;
                        tokens.push(Token::DoubleStar);
                    } else {
                        stars += 1;
                        tokens.push(Token::Star);
                    }
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        let literal = tokens
            .iter()
            .filter(|t| matches!(t, Token::Char(_) | Token::One))
            .count();
        if stars > 5 || tokens.is_empty() || literal > MAX_GROUP_CHARS {
            return None;
        }
        Some(Pattern(tokens))
    }

    /// Whether `group` matches (case-sensitive). Runs the pattern as a set of positions over
    /// the group's characters, so it costs at most (group length × pattern length) steps
    /// whatever the input; a backtracking matcher is exponential in the number of `*`.
    pub fn matches(&self, group: &str) -> bool {
        let p = &self.0;
        // active[i]: the first i tokens match the characters read so far.
        let mut active = vec![false; p.len() + 1];
        let mut next = vec![false; p.len() + 1];
        active[0] = true;
        skip_empty_stars(p, &mut active);
        for c in group.chars() {
            next.fill(false);
            for (i, t) in p.iter().enumerate() {
                if !active[i] {
                    continue;
                }
                match t {
                    Token::Char(x) if *x == c => next[i + 1] = true,
                    Token::One if c != '.' => next[i + 1] = true,
                    Token::Star if c != '.' => next[i] = true,
                    Token::DoubleStar => next[i] = true,
                    _ => {}
                }
            }
            skip_empty_stars(p, &mut next);
            std::mem::swap(&mut active, &mut next);
            if !active.contains(&true) {
                return false;
            }
        }
        active[p.len()]
    }
}

/// A star may match nothing: a position before a star also counts as the one after it.
fn skip_empty_stars(p: &[Token], set: &mut [bool]) {
    for (i, t) in p.iter().enumerate() {
        if set[i] && matches!(t, Token::Star | Token::DoubleStar) {
            set[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_examples_from_the_docs() {
        let p = Pattern::parse("chat-*").unwrap();
        assert!(p.matches("chat-1"));
        assert!(!p.matches("chat.1"));
        assert!(!p.matches("chat-1.x"));
        let p = Pattern::parse("clientA.**").unwrap();
        assert!(p.matches("clientA.alpha.room1"));
        assert!(!p.matches("clientB.alpha"));
        let p = Pattern::parse(r"literal\*star").unwrap();
        assert!(p.matches("literal*star"));
        assert!(!p.matches("literalXstar"));
        let p = Pattern::parse("room?").unwrap();
        assert!(p.matches("room1") && !p.matches("room.") && !p.matches("room12"));
        assert!(Pattern::parse("*.*.*.*.*.*").is_none());
    }

    #[test]
    fn role_kinds() {
        let p = Permissions::from_roles(&[
            "webpubsub.joinLeaveGroup.g1",
            "webpubsub.sendToGroups.news-*",
        ]);
        assert!(p.allows(Permission::JoinLeaveGroup, "g1"));
        assert!(!p.allows(Permission::JoinLeaveGroup, "g2"));
        assert!(p.allows(Permission::SendToGroup, "news-1"));
        assert!(!p.allows(Permission::SendToGroup, "g1"));
        let mut p = Permissions::from_roles(&["webpubsub.sendToGroup"]);
        assert!(p.check(Permission::SendToGroup, None));
        p.revoke(Permission::SendToGroup, Some("g"));
        assert!(!p.allows(Permission::SendToGroup, "g"));
        assert!(p.allows(Permission::SendToGroup, "h"));
        p.revoke(Permission::SendToGroup, None);
        assert!(!p.allows(Permission::SendToGroup, "h"));
    }

    /// The straightforward backtracking definition, as a reference for small inputs.
    fn reference(p: &[Token], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(Token::Char(c)) => s.first() == Some(c) && reference(&p[1..], &s[1..]),
            Some(Token::One) => {
                matches!(s.first(), Some(c) if *c != '.') && reference(&p[1..], &s[1..])
            }
            Some(Token::Star) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != '.')
                .any(|i| reference(&p[1..], &s[i..])),
            Some(Token::DoubleStar) => (0..=s.len()).any(|i| reference(&p[1..], &s[i..])),
        }
    }

    #[test]
    fn matcher_agrees_with_the_backtracking_definition() {
        let alphabet = ['a', 'b', '.', '-', '*', '?', '\\'];
        let mut next = crate::test_rng(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _ in 0..20_000 {
            let pattern: String = (0..1 + next(7)).map(|_| alphabet[next(7)]).collect();
            let group: String = (0..next(9)).map(|_| alphabet[next(4)]).collect();
            let Some(p) = Pattern::parse(&pattern) else {
                continue;
            };
            let chars: Vec<char> = group.chars().collect();
            assert_eq!(
                p.matches(&group),
                reference(&p.0, &chars),
                "{pattern:?} vs {group:?}"
            );
            checked += 1;
        }
        assert!(checked > 5_000, "{checked}");
    }

    #[test]
    fn adversarial_patterns_match_in_linear_time() {
        // A backtracking matcher tries every way of splitting the dashes among the stars:
        // C(400, 4) ways, over 15 s of CPU.
        let group = format!("{}.", "-".repeat(1023));
        let started = std::time::Instant::now();
        for pattern in ["*-*-*-*-*", "**-**-*", "*?*?*?*?*", "-*-*-*-*-*-"] {
            let p = Pattern::parse(pattern).unwrap();
            for _ in 0..10 {
                assert!(!p.matches(&group), "{pattern}");
            }
        }
        assert!(Pattern::parse("**-**-*")
            .unwrap()
            .matches(&format!("{}.-", "-".repeat(400))));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(Pattern::parse(&"x".repeat(MAX_GROUP_CHARS)).is_some());
        assert!(Pattern::parse(&"x".repeat(MAX_GROUP_CHARS + 1)).is_none());
    }
}
