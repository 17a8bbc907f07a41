//! A small safe wrapper around PCRE2 (`pcre2-sys`, built from its vendored source and
//! linked statically: see `.cargo/config.toml`).
//!
//! Patterns are compiled the way Python's `re` reads a `str` pattern with `re.DOTALL`:
//! UTF and UCP (`\d`, `\w`, `\s`, `\b` are Unicode-aware), DOTALL; then JIT-compiled.
//! Matching is anchored at both ends (Python's `fullmatch`) and bounded: a match that
//! reaches the match limit, the depth/heap limit or the JIT stack is reported as
//! [`MatchError::Limit`], never as a non-match.

use pcre2_sys::*;
use std::ptr;
use std::sync::Mutex;

/// Bounds on one match call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// PCRE2's match limit (backtracking steps; counted differently by the JIT).
    pub match_limit: u32,
    /// PCRE2's depth limit (interpreter only; the JIT is bounded by its stack instead).
    pub depth_limit: u32,
    /// Largest JIT stack, in bytes.
    pub jit_stack: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            match_limit: 1_000_000,
            depth_limit: 10_000,
            jit_stack: 1 << 20,
        }
    }
}

/// A pattern that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// PCRE2's error code (120 is "regular expression is too large").
    pub code: i32,
    /// Byte offset in the pattern.
    pub offset: usize,
    pub message: String,
}

/// PCRE2's compile error "regular expression is too large".
pub const ERROR_TOO_LARGE: i32 = 120;

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

/// A match that could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// A resource limit was hit (match limit, depth/heap limit, JIT stack): the text may
    /// or may not match.
    Limit(&'static str),
    /// Any other PCRE2 error (a bug here, or out of memory).
    Other(i32, String),
}

impl std::fmt::Display for MatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatchError::Limit(what) => write!(f, "regex {what} reached"),
            MatchError::Other(code, msg) => write!(f, "PCRE2 error {code}: {msg}"),
        }
    }
}

fn error_message(code: i32) -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are valid; PCRE2 writes a NUL-terminated string.
    let n = unsafe { pcre2_get_error_message_8(code, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return format!("error {code}");
    }
    String::from_utf8_lossy(&buf[..n as usize]).into_owned()
}

/// `(?:pattern)\z` compiled with UTF, UCP, DOTALL and `extra` options. Offsets in errors
/// are in `pattern`.
fn compile(pattern: &str, extra: u32) -> Result<*mut pcre2_code_8, CompileError> {
    // fullmatch: anchored at the start by PCRE2_ANCHORED, at the end by `\z` after the
    // whole pattern (a group, so a top-level `|` stays inside it)
    compile_wrapped(&format!("(?:{pattern})\\z"), extra)
}

/// A pattern compiled as it is (offsets in errors counted after a 3-byte `(?:`).
fn compile_wrapped(wrapped: &str, extra: u32) -> Result<*mut pcre2_code_8, CompileError> {
    let mut code_err = 0i32;
    let mut offset = 0usize;
    let options = PCRE2_UTF | PCRE2_UCP | PCRE2_DOTALL | extra;
    // SAFETY: the pattern pointer/length are valid; errors are reported by value.
    let code = unsafe {
        pcre2_compile_8(
            wrapped.as_ptr(),
            wrapped.len(),
            options,
            &mut code_err,
            &mut offset,
            ptr::null_mut(),
        )
    };
    if code.is_null() {
        return Err(CompileError {
            code: code_err,
            offset: offset.saturating_sub(3),
            message: error_message(code_err),
        });
    }
    Ok(code)
}

/// The bytes a whole-text match of `pattern` can start with, as PCRE2's start-of-match
/// analysis finds them; None when it finds no short set (or the match can be empty).
/// Over-approximates: a first letter counts in both cases, a non-ASCII first code unit
/// counts as anything.
pub fn first_bytes(pattern: &str) -> Result<Option<[bool; 256]>, CompileError> {
    // not anchored: PCRE2 does its start-of-match analysis for unanchored patterns only
    let code = compile(pattern, 0)?;
    let mut kind: u32 = 0;
    let mut unit: u32 = 0;
    let mut map: *const u8 = ptr::null();
    // SAFETY: each item writes the documented type (uint32_t, uint32_t, const uint8_t *);
    // the bitmap (32 bytes) is read before the code is freed.
    let out = unsafe {
        pcre2_pattern_info_8(
            code,
            PCRE2_INFO_FIRSTCODETYPE,
            &mut kind as *mut u32 as *mut _,
        );
        pcre2_pattern_info_8(
            code,
            PCRE2_INFO_FIRSTCODEUNIT,
            &mut unit as *mut u32 as *mut _,
        );
        pcre2_pattern_info_8(
            code,
            PCRE2_INFO_FIRSTBITMAP,
            &mut map as *mut *const u8 as *mut _,
        );
        let mut set = [false; 256];
        let out = if kind == 1 && unit < 0x80 {
            let c = unit as u8;
            set[c.to_ascii_lowercase() as usize] = true;
            set[c.to_ascii_uppercase() as usize] = true;
            Some(set)
        } else if kind == 0 && !map.is_null() {
            let bits = std::slice::from_raw_parts(map, 32);
            for (b, slot) in set.iter_mut().enumerate() {
                *slot = bits[b / 8] & (1 << (b % 8)) != 0;
            }
            Some(set)
        } else {
            None
        };
        pcre2_code_free_8(code);
        out
    };
    Ok(out)
}

/// Per-call state: match data, a match context holding the limits and a JIT stack. One
/// thread at a time uses one scratch (it sits behind a mutex in [`Regex`]).
struct Scratch {
    data: *mut pcre2_match_data_8,
    ctx: *mut pcre2_match_context_8,
    stack: *mut pcre2_jit_stack_8,
}

// SAFETY: a scratch is only used by one thread at a time (behind a Mutex or owned).
unsafe impl Send for Scratch {}

impl Scratch {
    fn new(code: *const pcre2_code_8, limits: &Limits) -> Scratch {
        // SAFETY: plain allocations with PCRE2's default general context; checked below.
        unsafe {
            let data = pcre2_match_data_create_from_pattern_8(code, ptr::null_mut());
            let ctx = pcre2_match_context_create_8(ptr::null_mut());
            let stack = pcre2_jit_stack_create_8(
                32 * 1024,
                limits.jit_stack.max(32 * 1024),
                ptr::null_mut(),
            );
            assert!(
                !data.is_null() && !ctx.is_null() && !stack.is_null(),
                "PCRE2: out of memory"
            );
            pcre2_set_match_limit_8(ctx, limits.match_limit);
            pcre2_set_depth_limit_8(ctx, limits.depth_limit);
            pcre2_jit_stack_assign_8(ctx, None, stack as *mut _);
            Scratch { data, ctx, stack }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: each pointer was created by PCRE2 in `new` and is freed once.
        unsafe {
            pcre2_match_data_free_8(self.data);
            pcre2_match_context_free_8(self.ctx);
            pcre2_jit_stack_free_8(self.stack);
        }
    }
}

/// A compiled, JIT-compiled pattern. Immutable after compilation, so shared between
/// threads (PCRE2 documents compiled code as thread-safe).
pub struct Regex {
    code: *mut pcre2_code_8,
    limits: Limits,
    jit: bool,
    scratch: Mutex<Option<Scratch>>,
}

// SAFETY: `code` is never mutated after compilation; the scratch is behind a Mutex.
unsafe impl Send for Regex {}
unsafe impl Sync for Regex {}

impl Drop for Regex {
    fn drop(&mut self) {
        // the match data, made from the code, goes first
        if let Ok(slot) = self.scratch.get_mut() {
            slot.take();
        }
        // SAFETY: `code` was returned by pcre2_compile and is freed once.
        unsafe { pcre2_code_free_8(self.code) }
    }
}

/// Where a match's groups are: byte offsets into the subject, `None` for a group that
/// did not take part.
pub struct Groups {
    spans: Vec<Option<(usize, usize)>>,
}

impl Groups {
    pub fn get(&self, group: usize) -> Option<(usize, usize)> {
        self.spans.get(group).copied().flatten()
    }
}

impl Regex {
    /// Compiles `pattern` (UTF, UCP, DOTALL) to match whole subjects only, and JITs it.
    pub fn new(pattern: &str, limits: Limits) -> Result<Regex, CompileError> {
        Ok(Regex::jitted(compile(pattern, PCRE2_ANCHORED)?, limits))
    }

    /// A compiled pattern, JIT-compiled where PCRE2 can.
    fn jitted(code: *mut pcre2_code_8, limits: Limits) -> Regex {
        // SAFETY: `code` is a valid compiled pattern.
        let jit = unsafe { pcre2_jit_compile_8(code, PCRE2_JIT_COMPLETE) } == 0;
        Regex {
            code,
            limits,
            jit,
            scratch: Mutex::new(None),
        }
    }

    /// Compiles `pattern` (UTF, UCP, DOTALL) for Python's `re.search` (`prefix`: false)
    /// or `re.match` (`prefix`: true): see [`Regex::find_at`].
    pub fn new_search(pattern: &str, prefix: bool, limits: Limits) -> Result<Regex, CompileError> {
        let extra = if prefix { PCRE2_ANCHORED } else { 0 };
        let code = compile_wrapped(&format!("(?:{pattern})"), extra)?;
        Ok(Regex::jitted(code, limits))
    }

    /// Whether the JIT compiled this pattern (else the interpreter runs it).
    pub fn is_jit(&self) -> bool {
        self.jit
    }

    /// The number of a named group.
    pub fn group_number(&self, name: &str) -> Option<usize> {
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        // SAFETY: NUL-terminated name, valid code.
        let n = unsafe { pcre2_substring_number_from_name_8(self.code, cname.as_ptr()) };
        (n > 0).then_some(n as usize)
    }

    /// The number of capturing groups.
    pub fn group_count(&self) -> usize {
        let mut n: u32 = 0;
        // SAFETY: PCRE2_INFO_CAPTURECOUNT writes a uint32_t.
        unsafe {
            pcre2_pattern_info_8(
                self.code,
                PCRE2_INFO_CAPTURECOUNT,
                &mut n as *mut u32 as *mut _,
            );
        }
        n as usize
    }

    /// Matches the whole of `subject`: `Ok(None)` when it does not match.
    pub fn full_match(&self, subject: &str) -> Result<Option<Groups>, MatchError> {
        self.find_at(subject, 0)
    }

    /// The first match at or after byte `start` (a char boundary) of `subject`, group 0
    /// included: for a [`Regex::new_search`] pattern, Python's `search(subject, start)`
    /// (`match` when compiled as a prefix); `findall` is a loop over it.
    pub fn find_at(&self, subject: &str, start: usize) -> Result<Option<Groups>, MatchError> {
        let mut guard = self.scratch.try_lock().ok();
        let mut own = None;
        let scratch: &Scratch = match guard.as_deref_mut() {
            Some(slot) => slot.get_or_insert_with(|| Scratch::new(self.code, &self.limits)),
            // another thread matches with the shared scratch: a private one
            None => own.insert(Scratch::new(self.code, &self.limits)),
        };
        // SAFETY: subject is valid UTF-8 (a &str), scratch belongs to this call.
        let rc = unsafe {
            pcre2_match_8(
                self.code,
                subject.as_ptr(),
                subject.len(),
                start,
                PCRE2_NO_UTF_CHECK,
                scratch.data,
                scratch.ctx,
            )
        };
        if rc == PCRE2_ERROR_NOMATCH {
            return Ok(None);
        }
        if rc < 0 {
            return Err(match rc {
                PCRE2_ERROR_MATCHLIMIT => MatchError::Limit("match limit"),
                PCRE2_ERROR_DEPTHLIMIT => MatchError::Limit("depth limit"),
                PCRE2_ERROR_HEAPLIMIT => MatchError::Limit("heap limit"),
                PCRE2_ERROR_JIT_STACKLIMIT => MatchError::Limit("JIT stack limit"),
                _ => MatchError::Other(rc, error_message(rc)),
            });
        }
        // rc == 0 would mean the ovector is too small: it is sized from the pattern
        let used = rc as usize;
        // SAFETY: the ovector holds 2 * (capture count + 1) offsets.
        let ov = unsafe {
            let n = pcre2_get_ovector_count_8(scratch.data) as usize;
            std::slice::from_raw_parts(pcre2_get_ovector_pointer_8(scratch.data), 2 * n)
        };
        let spans = (0..ov.len() / 2)
            .map(|g| {
                let (s, e) = (ov[2 * g], ov[2 * g + 1]);
                (g < used && s != PCRE2_UNSET).then_some((s, e))
            })
            .collect();
        Ok(Some(Groups { spans }))
    }
}

impl PartialEq for Groups {
    fn eq(&self, other: &Self) -> bool {
        self.spans == other.spans
    }
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.spans.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_match_only() {
        let r = Regex::new(r"a(?P<x>\d+)", Limits::default()).unwrap();
        assert!(r.is_jit());
        assert!(r.full_match("a12").unwrap().is_some());
        assert!(r.full_match("a12 ").unwrap().is_none());
        assert!(r.full_match("xa12").unwrap().is_none());
        let g = r.full_match("a123").unwrap().unwrap();
        assert_eq!(g.get(r.group_number("x").unwrap()), Some((1, 4)));
    }

    #[test]
    fn alternation_inside_the_anchors() {
        let r = Regex::new("ab|a", Limits::default()).unwrap();
        assert!(r.full_match("a").unwrap().is_some());
        assert!(r.full_match("ab").unwrap().is_some());
        assert!(r.full_match("abc").unwrap().is_none());
    }

    #[test]
    fn unicode_classes_and_dotall() {
        let r = Regex::new(r"\d+ \w+\s.", Limits::default()).unwrap();
        assert!(r.full_match("٣٤ héllo\u{2003}\n").unwrap().is_some());
    }

    #[test]
    fn unset_groups() {
        let r = Regex::new(r"(a)?(b)?(c)?", Limits::default()).unwrap();
        assert_eq!(r.group_count(), 3);
        let g = r.full_match("b").unwrap().unwrap();
        assert_eq!((g.get(1), g.get(2), g.get(3)), (None, Some((0, 1)), None));
    }

    #[test]
    fn limit_is_not_a_non_match() {
        let limits = Limits {
            match_limit: 10_000,
            ..Limits::default()
        };
        let r = Regex::new(r"(?:a+)+b", limits).unwrap();
        let text = format!("{}!b", "a".repeat(40));
        assert_eq!(r.full_match(&text), Err(MatchError::Limit("match limit")));
        assert!(r.full_match("aaab").unwrap().is_some());
    }

    #[test]
    fn first_bytes_of_patterns() {
        let set = |p| {
            first_bytes(p).unwrap().map(|s| {
                (0..256)
                    .filter(|&b| s[b])
                    .map(|b| b as u8 as char)
                    .collect::<String>()
            })
        };
        assert_eq!(set("Failed|Accepted").as_deref(), Some("AF"));
        assert_eq!(set("(?:x)?y").as_deref(), Some("xy"));
        assert_eq!(set("(?i)f").as_deref(), Some("Ff"));
        assert_eq!(set("[0-9]+x").as_deref(), Some("0123456789"));
        assert_eq!(set(r"(?<![0-9])[0-9]").as_deref(), Some("0123456789"));
        // PCRE2 sets no start bits for UCP classes: anything
        assert_eq!(set(r"\d+"), None);
        assert_eq!(set(".*"), None);
        assert_eq!(set("é"), None);
    }

    #[test]
    fn search_and_prefix() {
        let r = Regex::new_search(r"(\w+)=(\d+)", false, Limits::default()).unwrap();
        let g = r.find_at("x a=1 b=22", 0).unwrap().unwrap();
        assert_eq!((g.get(0), g.get(1)), (Some((2, 5)), Some((2, 3))));
        let g = r.find_at("x a=1 b=22", 5).unwrap().unwrap();
        assert_eq!(g.get(2), Some((8, 10)));
        assert!(r.find_at("x a=1 b=22", 10).unwrap().is_none());
        let p = Regex::new_search(r"\d+$", true, Limits::default()).unwrap();
        assert!(p.find_at("12 ", 0).unwrap().is_none());
        // Python's `$` matches before a final newline too, and so does PCRE2's
        assert_eq!(p.find_at("12\n", 0).unwrap().unwrap().get(0), Some((0, 2)));
        assert!(p.find_at("x12", 0).unwrap().is_none());
    }

    #[test]
    fn compile_error() {
        let e = Regex::new("a(b", Limits::default()).err().unwrap();
        assert!(e.message.contains("missing closing parenthesis"), "{e}");
    }
}
