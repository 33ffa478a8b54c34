//! Kubernetes' static token file (`--token-auth-file`): CSV lines
//! `token,user,uid[,"group1,group2"]`.

use super::UserInfo;
use crate::error::{AuthError, Result};
use std::collections::HashMap;
use std::path::Path;

/// The tokens of a static token file.
#[derive(Clone, Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: show only how many there are.
        f.debug_struct("TokenFile").field("tokens", &self.users.len()).finish()
    }
}

impl TokenFile {
    /// Parses the CSV text. Blank lines are skipped; a line with fewer than three columns or
    /// broken quoting is an error naming the line; an empty token is skipped with a warning,
    /// and a repeated token keeps its last line (both as Kubernetes does).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let fields = split_csv_line(raw).map_err(|reason| AuthError::TokenFile { line, reason })?;
            if fields.len() < 3 {
                return Err(AuthError::TokenFile {
                    line,
                    reason: format!("need at least 3 columns (token, user name, user uid), found {}", fields.len()),
                });
            }
            let token = &fields[0];
            if token.is_empty() {
                tracing::warn!(line, "token file: empty token skipped");
                continue;
            }
            let groups: Vec<String> = match fields.get(3) {
                Some(g) => g.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect(),
                None => Vec::new(),
            };
            let mut user = UserInfo::new(fields[1].clone(), groups).with_authenticated_group();
            user.uid = fields[2].clone();
            if users.insert(token.clone(), user).is_some() {
                tracing::warn!(line, "token file: duplicate token, the later line wins");
            }
        }
        Ok(TokenFile { users })
    }

    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::io(path, e))?;
        Self::parse(&text)
    }

    /// The user `token` belongs to.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.users.get(token).cloned()
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// One RFC 4180 record on one line: fields split on commas, a field may be double-quoted
/// (commas inside, `""` for a quote). A quote inside an unquoted field is an error, like Go's
/// csv reader that Kubernetes uses.
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("unterminated quoted field".to_string()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("unexpected {c:?} after a quoted field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => {
                        fields.push(field);
                        break;
                    }
                    Some('"') => return Err("bare \" in an unquoted field".to_string()),
                    Some(c) => field.push(c),
                }
            }
        }
    }
}
