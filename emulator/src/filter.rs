//! OData filter expressions selecting connections (`userId`, `connectionId`, `groups`).

use crate::session::Session;

/// Deepest nesting of parentheses, `not` and function calls a filter may use. The parser and
/// the evaluator recurse once per level, so this bounds their stack use; chains of `and` /
/// `or` are kept flat and do not count.
pub const MAX_FILTER_DEPTH: usize = 32;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    UserId,
    ConnectionId,
    Groups,
    Lit(Val),
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Call(String, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    List(Vec<Val>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            '\'' => {
                let mut v = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated string literal".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            v.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                out.push(Tok::Num(
                    text.parse().map_err(|_| format!("bad number '{text}'"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected character '{c}'")),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Current nesting (see [`MAX_FILTER_DEPTH`]).
    depth: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<String> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.toks.get(self.pos) == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Runs `f` one nesting level deeper; `Err` beyond [`MAX_FILTER_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        if self.depth >= MAX_FILTER_DEPTH {
            return Err(format!("nested deeper than {MAX_FILTER_DEPTH} levels"));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and()?];
        while self.peek_word().as_deref() == Some("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(flat(terms, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.not()?];
        while self.peek_word().as_deref() == Some("and") {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(flat(terms, Expr::And))
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek_word().as_deref() == Some("not") {
            self.pos += 1;
            return self.nested(|p| Ok(Expr::Not(Box::new(p.not()?))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, String> {
        let l = self.primary()?;
        let op = match self.peek_word().as_deref() {
            Some("eq") => Op::Eq,
            Some("ne") => Op::Ne,
            Some("gt") => Op::Gt,
            Some("ge") => Op::Ge,
            Some("lt") => Op::Lt,
            Some("le") => Op::Le,
            Some("in") => Op::In,
            _ => return Ok(l),
        };
        self.pos += 1;
        Ok(Expr::Bin(op, Box::new(l), Box::new(self.primary()?)))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or("unexpected end of filter")?;
        self.pos += 1;
        match t {
            Tok::Str(s) => Ok(Expr::Lit(Val::Str(s))),
            Tok::Num(n) => Ok(Expr::Lit(Val::Num(n))),
            Tok::LParen => self.nested(|p| {
                let first = p.or()?;
                if p.eat(&Tok::RParen) {
                    return Ok(first);
                }
                let mut items = vec![first];
                while p.eat(&Tok::Comma) {
                    items.push(p.or()?);
                }
                if !p.eat(&Tok::RParen) {
                    return Err("expected ')'".into());
                }
                Ok(Expr::List(items))
            }),
            Tok::Word(w) => {
                if self.eat(&Tok::LParen) {
                    let mut args = self.nested(|p| {
                        let mut args = Vec::new();
                        if !p.eat(&Tok::RParen) {
                            loop {
                                args.push(p.or()?);
                                if p.eat(&Tok::RParen) {
                                    break;
                                }
                                if !p.eat(&Tok::Comma) {
                                    return Err("expected ',' or ')'".to_string());
                                }
                            }
                        }
                        Ok(args)
                    })?;
                    let name = w.to_ascii_lowercase();
                    if name == "not" {
                        return match args.len() {
                            1 => Ok(Expr::Not(Box::new(args.remove(0)))),
                            _ => Err("not() takes one argument".into()),
                        };
                    }
                    return Ok(Expr::Call(name, args));
                }
                match w.to_ascii_lowercase().as_str() {
                    "userid" => Ok(Expr::UserId),
                    "connectionid" => Ok(Expr::ConnectionId),
                    "groups" => Ok(Expr::Groups),
                    "true" => Ok(Expr::Lit(Val::Bool(true))),
                    "false" => Ok(Expr::Lit(Val::Bool(false))),
                    "null" => Ok(Expr::Lit(Val::Null)),
                    other => Err(format!("unknown identifier '{other}'")),
                }
            }
            Tok::RParen | Tok::Comma => Err("unexpected token".into()),
        }
    }
}

/// One term as itself, several as an n-ary `and` / `or`.
fn flat(mut terms: Vec<Expr>, node: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        node(terms)
    }
}

impl Filter {
    /// Parses an OData filter; `Err` describes the problem.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut p = Parser {
            toks: tokenize(s)?,
            pos: 0,
            depth: 0,
        };
        let e = p.or()?;
        if p.pos != p.toks.len() {
            return Err("unexpected trailing tokens".into());
        }
        Ok(Filter(e))
    }

    /// Whether the session matches.
    pub fn matches(&self, s: &Session) -> bool {
        let ctx = Ctx {
            user_id: s.user_id.as_deref(),
            connection_id: &s.id,
            groups: s.group_list(),
        };
        matches!(eval(&self.0, &ctx), Ok(Val::Bool(true)))
    }

    /// Whether a connection with these attributes matches.
    #[cfg(any(test, fuzzing))]
    pub fn matches_attrs(
        &self,
        user_id: Option<&str>,
        connection_id: &str,
        groups: &[&str],
    ) -> bool {
        let ctx = Ctx {
            user_id,
            connection_id,
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        matches!(eval(&self.0, &ctx), Ok(Val::Bool(true)))
    }
}

struct Ctx<'a> {
    user_id: Option<&'a str>,
    connection_id: &'a str,
    groups: Vec<String>,
}

fn eval(e: &Expr, c: &Ctx<'_>) -> Result<Val, String> {
    Ok(match e {
        Expr::UserId => c.user_id.map(|u| Val::Str(u.into())).unwrap_or(Val::Null),
        Expr::ConnectionId => Val::Str(c.connection_id.into()),
        Expr::Groups => Val::List(c.groups.iter().map(|g| Val::Str(g.clone())).collect()),
        Expr::Lit(v) => v.clone(),
        Expr::List(items) => Val::List(items.iter().map(|i| eval(i, c)).collect::<Result<_, _>>()?),
        Expr::Not(x) => match eval(x, c)? {
            Val::Bool(b) => Val::Bool(!b),
            _ => return Err("not needs a boolean".into()),
        },
        Expr::And(terms) => {
            for t in terms {
                if !truthy(eval(t, c)?) {
                    return Ok(Val::Bool(false));
                }
            }
            Val::Bool(true)
        }
        Expr::Or(terms) => {
            for t in terms {
                if truthy(eval(t, c)?) {
                    return Ok(Val::Bool(true));
                }
            }
            Val::Bool(false)
        }
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval(a, c)?, eval(b, c)?);
            Val::Bool(match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::In => match b {
                    Val::List(items) => items.contains(&a),
                    _ => return Err("'in' needs a collection".into()),
                },
                Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                    let ord = match (&a, &b) {
                        (Val::Str(x), Val::Str(y)) => x.partial_cmp(y),
                        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
                        _ => None,
                    };
                    let Some(ord) = ord else {
                        return Ok(Val::Bool(false));
                    };
                    match op {
                        Op::Gt => ord.is_gt(),
                        Op::Ge => ord.is_ge(),
                        Op::Lt => ord.is_lt(),
                        _ => ord.is_le(),
                    }
                }
            })
        }
        Expr::Call(name, args) => {
            let vals: Vec<Val> = args.iter().map(|a| eval(a, c)).collect::<Result<_, _>>()?;
            let s = |i: usize| match vals.get(i) {
                Some(Val::Str(s)) => Some(s.as_str()),
                _ => None,
            };
            match (name.as_str(), vals.len()) {
                ("length", 1) => match &vals[0] {
                    Val::Str(x) => Val::Num(x.chars().count() as f64),
                    Val::List(l) => Val::Num(l.len() as f64),
                    _ => Val::Null,
                },
                ("startswith", 2) => {
                    Val::Bool(matches!((s(0), s(1)), (Some(a), Some(b)) if a.starts_with(b)))
                }
                ("endswith", 2) => {
                    Val::Bool(matches!((s(0), s(1)), (Some(a), Some(b)) if a.ends_with(b)))
                }
                ("contains", 2) => {
                    Val::Bool(matches!((s(0), s(1)), (Some(a), Some(b)) if a.contains(b)))
                }
                ("substringof", 2) => {
                    Val::Bool(matches!((s(0), s(1)), (Some(a), Some(b)) if b.contains(a)))
                }
                ("tolower", 1) => s(0)
                    .map(|x| Val::Str(x.to_lowercase()))
                    .unwrap_or(Val::Null),
                ("toupper", 1) => s(0)
                    .map(|x| Val::Str(x.to_uppercase()))
                    .unwrap_or(Val::Null),
                _ => return Err(format!("unsupported function '{name}'")),
            }
        }
    })
}

fn truthy(v: Val) -> bool {
    matches!(v, Val::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::{Filter, MAX_FILTER_DEPTH};

    fn m(f: &str, user: Option<&str>, groups: &[&str]) -> bool {
        Filter::parse(f).unwrap().matches_attrs(user, "c1", groups)
    }

    #[test]
    fn documented_examples() {
        assert!(m("userId eq 'user1'", Some("user1"), &[]));
        assert!(!m("userId eq 'user1'", None, &[]));
        assert!(m("userId ne 'u1'", Some("u2"), &[]));
        assert!(m("'group1' in groups", None, &["group1"]));
        assert!(m("userId in ('u1','u2')", Some("u2"), &[]));
        assert!(m("not('g2' in groups)", None, &["g1"]));
        assert!(m(
            "not ('g2' in groups) and (connectionId eq 'c1' or userId eq 'x')",
            None,
            &[]
        ));
        assert!(m("userId eq null", None, &[]));
        assert!(m(
            "startswith(userId, 'us') and length(groups) eq 1",
            Some("user"),
            &["a"]
        ));
        assert!(m("UserID eq 'O''Brien'", Some("O'Brien"), &[]));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "userId eq",
            "foo eq 'a'",
            "userId eq 'a",
            "(userId eq 'a'",
            "userId eq 'a' 'b'",
            "#",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nesting_is_limited_and_flat_chains_are_not() {
        let wrap = |open: &str, close: &str, n: usize| {
            format!("{}userId eq 'a'{}", open.repeat(n), close.repeat(n))
        };
        // `not(...)` is a `not` and a parenthesis: two levels.
        for (open, close, levels) in [("(", ")", 1), ("not ", "", 1), ("not(", ")", 2)] {
            assert!(
                Filter::parse(&wrap(open, close, MAX_FILTER_DEPTH / levels)).is_ok(),
                "{open}"
            );
            for n in [MAX_FILTER_DEPTH + 1, 3000, 100_000] {
                let e = Filter::parse(&wrap(open, close, n)).unwrap_err();
                assert!(e.contains("nested deeper"), "{open} x{n}: {e}");
            }
        }
        let calls = format!(
            "{}userId{} eq 'a'",
            "tolower(".repeat(3000),
            ")".repeat(3000)
        );
        assert!(Filter::parse(&calls).is_err());
        // A long flat chain is one level, and evaluating it does not recurse per term.
        let chain = vec!["userId eq 'x'"; 100_000].join(" or ") + " or userId eq 'u'";
        assert!(Filter::parse(&chain)
            .unwrap()
            .matches_attrs(Some("u"), "c", &[]));
        let chain = vec!["'g' in groups"; 100_000].join(" and ");
        assert!(Filter::parse(&chain)
            .unwrap()
            .matches_attrs(None, "c", &["g"]));
    }
}
