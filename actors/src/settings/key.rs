//! What one setting is, declared once: its key in the configuration file,
//! the shape and range of its value (the one validation of that value),
//! its default, one line of documentation and what a reload does with it.
//!
//! Plain data, no file format: the root crate reads the file (TOML) through
//! these declarations ([`Plain`] in, [`Value`] out), README's key tables
//! are checked against them, and a reload's "restart needed" comes from
//! [`Reload`]. [`declare_settings!`] turns a list of declarations into a
//! settings struct, its `Default` and its `KEYS` table.

use std::fmt;
use std::time::Duration;

/// What a reload (SIGHUP) does with a key whose value changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The running service takes the new value.
    Live,
    /// The running value stays; the reload logs "restart needed".
    Restart,
    /// Taken when the service, or for a runner key the runner, starts: a
    /// reload leaves a running one as it is, without a word (a runner's
    /// connection keys, the log format the command line may override).
    AtStart,
}

/// The shape of a value, with its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A positive integer.
    Count,
    /// `true` or `false`.
    Flag,
    /// A positive number of seconds (integer or decimal).
    Seconds,
    /// A number of seconds; 0 stands for the default.
    SecondsOrDefault,
    /// A number of seconds; 0 turns the feature off.
    SecondsOrOff,
    /// A number greater than 0 and at most 1.
    Fraction,
    /// A non-empty string.
    Text,
    /// A table of keys (declared on their own).
    Table,
}

/// A key's shape and how a message names what is expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The shape and range.
    pub shape: Shape,
    /// What a message about a wrong value says is expected.
    pub expected: &'static str,
}

impl Kind {
    /// A positive integer.
    pub const COUNT: Kind = Kind::new(Shape::Count, "a positive integer");
    /// A boolean.
    pub const FLAG: Kind = Kind::new(Shape::Flag, "a boolean (true or false)");
    /// A positive number of seconds.
    pub const SECONDS: Kind = Kind::new(
        Shape::Seconds,
        "a positive number of seconds (integer or float)",
    );
    /// A number of seconds, 0 meaning the default (named in the message).
    pub(crate) const SECONDS_OR_DEFAULT: Kind =
        Kind::new(Shape::SecondsOrDefault, "a number of seconds");
    /// A number in (0, 1].
    pub(crate) const FRACTION: Kind =
        Kind::new(Shape::Fraction, "a number greater than 0 and at most 1");
    /// A non-empty string.
    pub const TEXT: Kind = Kind::new(Shape::Text, "a non-empty string");
    /// A table.
    pub const TABLE: Kind = Kind::new(Shape::Table, "a table");

    /// A number of seconds, 0 turning the feature off; `expected` says so.
    pub const fn seconds_or_off(expected: &'static str) -> Kind {
        Kind::new(Shape::SecondsOrOff, expected)
    }

    const fn new(shape: Shape, expected: &'static str) -> Kind {
        Kind { shape, expected }
    }

    /// The same shape, with another description of what is expected.
    pub const fn expecting(self, expected: &'static str) -> Kind {
        Kind::new(self.shape, expected)
    }

    /// The value `plain` stands for, if the shape and range accept it.
    /// Zero seconds is [`Value::Off`] for the shapes that accept it.
    pub fn parse(&self, plain: &Plain<'_>) -> Option<Value> {
        match (self.shape, plain) {
            (Shape::Count, Plain::Integer(i)) => {
                u64::try_from(*i).ok().filter(|n| *n > 0).map(Value::Count)
            }
            (Shape::Flag, Plain::Bool(b)) => Some(Value::Flag(*b)),
            (Shape::Seconds, _) => seconds(plain).filter(|d| !d.is_zero()).map(Value::Seconds),
            (Shape::SecondsOrDefault | Shape::SecondsOrOff, _) => seconds(plain).map(|d| {
                if d.is_zero() {
                    Value::Off
                } else {
                    Value::Seconds(d)
                }
            }),
            (Shape::Fraction, Plain::Integer(i)) => fraction(*i as f64),
            (Shape::Fraction, Plain::Float(x)) => fraction(*x),
            (Shape::Text, Plain::Text(s)) if !s.is_empty() => Some(Value::Text(s.to_string())),
            _ => None,
        }
    }

    /// Whether a value given in code (not read from a file) is in range.
    pub(crate) fn accepts(&self, value: &Value) -> bool {
        match (self.shape, value) {
            (Shape::Count, Value::Count(n)) => *n > 0,
            (Shape::Flag, Value::Flag(_)) => true,
            (Shape::Seconds | Shape::SecondsOrDefault, Value::Seconds(d)) => !d.is_zero(),
            (Shape::SecondsOrOff, Value::Seconds(_) | Value::Off) => true,
            (Shape::Fraction, Value::Fraction(x)) => fraction(*x).is_some(),
            (Shape::Text, Value::Text(s)) => !s.is_empty(),
            _ => false,
        }
    }
}

/// A non-negative number of seconds (integer or finite decimal).
fn seconds(plain: &Plain<'_>) -> Option<Duration> {
    match plain {
        Plain::Integer(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        Plain::Float(x) if x.is_finite() && *x >= 0.0 => Duration::try_from_secs_f64(*x).ok(),
        _ => None,
    }
}

fn fraction(x: f64) -> Option<Value> {
    (x > 0.0 && x <= 1.0).then_some(Value::Fraction(x))
}

/// A scalar as a configuration file holds it, before validation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Plain<'a> {
    /// An integer.
    Integer(i64),
    /// A decimal number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(&'a str),
    /// Anything else (a table, an array, a date).
    Other,
}

/// A validated value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A positive integer.
    Count(u64),
    /// A boolean.
    Flag(bool),
    /// A number of seconds.
    Seconds(Duration),
    /// Zero seconds: off, or the default.
    Off,
    /// A fraction in (0, 1].
    Fraction(f64),
    /// A string.
    Text(String),
}

/// As README's tables show a default: `3`, `0.5`, `1.0`, `true`, `` `par` ``.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Count(n) => write!(f, "{n}"),
            Value::Flag(b) => write!(f, "{b}"),
            Value::Seconds(d) if d.subsec_nanos() == 0 => write!(f, "{}", d.as_secs()),
            Value::Seconds(d) => write!(f, "{}", d.as_secs_f64()),
            Value::Off => f.write_str("0"),
            Value::Fraction(x) => write!(f, "{x:?}"),
            Value::Text(s) => write!(f, "`{s}`"),
        }
    }
}

/// What an absent key means.
#[derive(Clone, Debug, PartialEq)]
pub enum Fallback {
    /// The default of the settings struct the key is declared in.
    Declared,
    /// The key must be written.
    Required,
    /// Nothing: the feature is off, or another source decides.
    Absent,
    /// This value.
    Value(Value),
    /// This string (a default defined elsewhere, by its constant).
    Text(&'static str),
    /// A default described in words (derived from another key).
    Words(&'static str),
}

/// One key of the configuration file.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// Its dotted path in its section: `concurrent`,
    /// `quota_computation.reference_flavor`,
    /// `paas_job_trace_watch.poll_step` (in a `[[runners]]` section).
    pub name: &'static str,
    /// Other accepted spellings of its last part (each read with a
    /// warning): the spellings the Python runner's documentation used.
    pub aliases: &'static [&'static str],
    /// The shape and range of its value.
    pub kind: Kind,
    /// What an absent key means.
    pub default: Fallback,
    /// One line of documentation (README's "meaning" column), as lines of
    /// source; the first empty line ends it.
    pub doc: &'static [&'static str],
    /// What a reload does with a changed value.
    pub reload: Reload,
}

impl Key {
    /// The name of the key inside its table: `reference_flavor` for
    /// `quota_computation.reference_flavor`.
    pub fn leaf(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }

    /// The table the key is in (`quota_computation`), `None` at the top
    /// of its section.
    pub fn table(&self) -> Option<&'static str> {
        self.name.rsplit_once('.').map(|(table, _)| table)
    }

    /// The documentation line: the source lines up to the first empty
    /// one, trimmed and joined.
    pub fn doc_line(&self) -> String {
        self.doc
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What a message about a wrong value says is expected; `default` is
    /// the key's default, named when 0 stands for it.
    pub fn expected(&self, default: Option<&Value>) -> String {
        match (self.kind.shape, default) {
            (Shape::SecondsOrDefault, Some(d)) => format!("{} (0 means {d})", self.kind.expected),
            _ => self.kind.expected.to_string(),
        }
    }
}

/// A field's type as a [`Value`].
pub(crate) trait SettingValue: Sized {
    /// The value of the field.
    fn to_value(&self) -> Value;
    /// The field from a validated value of its key.
    fn from_value(value: Value) -> Option<Self>;
}

impl SettingValue for usize {
    fn to_value(&self) -> Value {
        Value::Count(u64::try_from(*self).unwrap_or(u64::MAX))
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Count(n) => usize::try_from(n).ok(),
            _ => None,
        }
    }
}

/// A field type that is one variant of [`Value`].
macro_rules! setting_value {
    ($($ty:ty => $variant:ident),*) => {$(
        impl SettingValue for $ty {
            fn to_value(&self) -> Value {
                Value::$variant(*self)
            }
            fn from_value(value: Value) -> Option<Self> {
                match value {
                    Value::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    )*};
}

setting_value!(bool => Flag, f64 => Fraction, Duration => Seconds);

/// `None` is off (zero seconds in the file).
impl SettingValue for Option<Duration> {
    fn to_value(&self) -> Value {
        match self {
            Some(d) if !d.is_zero() => Value::Seconds(*d),
            _ => Value::Off,
        }
    }
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Seconds(d) => Some(Some(d)),
            Value::Off => Some(None),
            _ => None,
        }
    }
}

/// A key declared with a field of the settings struct `S`.
pub struct Setting<S: 'static> {
    /// The key.
    pub key: Key,
    pub(crate) get: fn(&S) -> Value,
    pub(crate) set: fn(&mut S, Value) -> bool,
}

impl<S: Default> Setting<S> {
    /// The field's value in `settings`.
    pub(crate) fn value(&self, settings: &S) -> Value {
        (self.get)(settings)
    }

    /// The field's default.
    pub fn default_value(&self) -> Value {
        (self.get)(&S::default())
    }

    /// Sets the field from the value `plain` read in a file; false (the
    /// field unchanged) when the key's shape or range refuses it.
    pub fn read(&self, settings: &mut S, plain: &Plain<'_>) -> bool {
        match self.key.kind.parse(plain) {
            None => false,
            Some(Value::Off) if self.key.kind.shape == Shape::SecondsOrDefault => {
                (self.set)(settings, self.default_value())
            }
            Some(value) => (self.set)(settings, value),
        }
    }

    /// Copies the field from `from` into `to`.
    pub(crate) fn copy(&self, to: &mut S, from: &S) {
        // A value of the field's own type always converts back.
        let _ = (self.set)(to, (self.get)(from));
    }

    /// Whether the field's value in `settings` is in the key's range.
    pub(crate) fn accepts(&self, settings: &S) -> bool {
        self.key.kind.accepts(&(self.get)(settings))
    }
}

/// A value out of its key's range, in settings built in code.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid setting `{key}`: expected {expected}, found {found:?}")]
pub struct InvalidSetting {
    /// The key.
    pub key: &'static str,
    /// What its declaration accepts.
    pub expected: &'static str,
    /// The value found.
    pub found: Value,
}

/// Checks every declared field of `settings` against its key.
pub(crate) fn check<S: Default>(keys: &[Setting<S>], settings: &S) -> Result<(), InvalidSetting> {
    match keys.iter().find(|s| !s.accepts(settings)) {
        None => Ok(()),
        Some(s) => Err(InvalidSetting {
            key: s.key.name,
            expected: s.key.kind.expected,
            found: s.value(settings),
        }),
    }
}

/// Names of the keys whose value differs between `old` and `new`, among
/// those `reload` applies to.
pub fn changed<S: Default>(
    keys: &[Setting<S>],
    old: &S,
    new: &S,
    reload: Reload,
) -> Vec<&'static str> {
    keys.iter()
        .filter(|s| s.key.reload == reload && s.value(old) != s.value(new))
        .map(|s| s.key.name)
        .collect()
}

/// A settings struct whose fields are declared keys (`keys { … }`, each
/// `field: Type = default => "key" | "alias", Kind, Reload;` under its
/// documentation, whose first paragraph is README's line) or fixed values
/// the file does not set (`fixed { … }`), each written once: the struct,
/// its `Default` and its `KEYS` table come from this.
macro_rules! declare_settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            keys {
                $(
                    $(#[doc = $doc:literal])*
                    $field:ident : $ty:ty = $default:expr =>
                        $key:literal $(| $alias:literal)*, $kind:expr, $reload:ident;
                )*
            }
            fixed {
                $(
                    $(#[doc = $fdoc:literal])*
                    $ffield:ident : $fty:ty = $fdefault:expr;
                )*
            }
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $( $(#[doc = $fdoc])* pub $ffield: $fty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $default, )*
                    $( $ffield: $fdefault, )*
                }
            }
        }

        impl $name {
            /// The declared keys, in declaration order.
            pub const KEYS: &'static [$crate::settings::Setting<$name>] = &[
                $(
                    $crate::settings::Setting {
                        key: $crate::settings::Key {
                            name: $key,
                            aliases: &[$($alias),*],
                            kind: $kind,
                            default: $crate::settings::Fallback::Declared,
                            doc: &[$($doc),*],
                            reload: $crate::settings::Reload::$reload,
                        },
                        get: |s| $crate::settings::SettingValue::to_value(&s.$field),
                        set: |s, v| match $crate::settings::SettingValue::from_value(v) {
                            Some(x) => {
                                s.$field = x;
                                true
                            }
                            None => false,
                        },
                    },
                )*
            ];

            /// Checks every declared field against its key.
            pub fn check(&self) -> Result<(), $crate::settings::InvalidSetting> {
                $crate::settings::check(Self::KEYS, self)
            }
        }
    };
}

pub(crate) use declare_settings;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_and_range() {
        let secs = |s| Some(Value::Seconds(Duration::from_secs(s)));
        let cases: &[(Kind, Plain<'_>, Option<Value>)] = &[
            (Kind::COUNT, Plain::Integer(3), Some(Value::Count(3))),
            (Kind::COUNT, Plain::Integer(0), None),
            (Kind::COUNT, Plain::Integer(-1), None),
            (Kind::COUNT, Plain::Text("3"), None),
            (Kind::FLAG, Plain::Bool(false), Some(Value::Flag(false))),
            (Kind::FLAG, Plain::Integer(1), None),
            (Kind::SECONDS, Plain::Integer(2), secs(2)),
            (
                Kind::SECONDS,
                Plain::Float(1.5),
                Some(Value::Seconds(Duration::from_millis(1500))),
            ),
            (Kind::SECONDS, Plain::Integer(0), None),
            (Kind::SECONDS, Plain::Float(f64::NAN), None),
            (Kind::SECONDS, Plain::Bool(true), None),
            (
                Kind::SECONDS_OR_DEFAULT,
                Plain::Integer(0),
                Some(Value::Off),
            ),
            (
                Kind::seconds_or_off("x"),
                Plain::Integer(0),
                Some(Value::Off),
            ),
            (Kind::seconds_or_off("x"), Plain::Integer(-5), None),
            (
                Kind::FRACTION,
                Plain::Integer(1),
                Some(Value::Fraction(1.0)),
            ),
            (Kind::FRACTION, Plain::Float(1.5), None),
            (Kind::FRACTION, Plain::Float(0.0), None),
            (Kind::TEXT, Plain::Text(""), None),
            (Kind::TEXT, Plain::Text("a"), Some(Value::Text("a".into()))),
        ];
        for (kind, plain, want) in cases {
            assert_eq!(&kind.parse(plain), want, "{kind:?} {plain:?}");
            if let Some(v) = want {
                let zero_means_default = *v == Value::Off && kind.shape == Shape::SecondsOrDefault;
                assert_eq!(kind.accepts(v), !zero_means_default, "{kind:?} {v:?}");
            }
        }
    }

    #[test]
    fn defaults_show_as_readme_writes_them() {
        let shown = [
            Value::Count(50),
            Value::Flag(true),
            Value::Seconds(Duration::from_secs(3)),
            Value::Seconds(Duration::from_millis(500)),
            Value::Off,
            Value::Fraction(1.0),
            Value::Text("par".into()),
        ]
        .map(|v| v.to_string());
        assert_eq!(shown, ["50", "true", "3", "0.5", "0", "1.0", "`par`"]);
    }

    #[test]
    fn a_key_names_its_table_and_doc_line() {
        let key = Key {
            name: "quota_computation.reference_flavor",
            aliases: &[],
            kind: Kind::SECONDS_OR_DEFAULT,
            default: Fallback::Required,
            doc: &[" First line", " goes on.", "", " Not in README."],
            reload: Reload::Restart,
        };
        assert_eq!(key.leaf(), "reference_flavor");
        assert_eq!(key.table(), Some("quota_computation"));
        assert_eq!(key.doc_line(), "First line goes on.");
        assert_eq!(
            key.expected(Some(&Value::Seconds(Duration::from_secs(3)))),
            "a number of seconds (0 means 3)"
        );
    }
}
