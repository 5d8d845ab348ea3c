//! Turns a [`Policy`] into a classic BPF program for seccomp.
//!
//! Layout, in program order (every jump goes forward, as BPF requires):
//!
//! 1. `A = arch; if A != policy.arch → KILL_PROCESS`. The syscall numbers
//!    below mean something only for this architecture (on x86_64 an
//!    `int 0x80` call carries AUDIT_ARCH_I386 and i386 numbers). The
//!    kill is the instruction after the check, so that jump is always 1.
//! 2. `A = nr`, then a balanced binary search with `JGE K` over the
//!    intervals that split `[0, 2^32)` into runs of equal treatment
//!    (allowed gaps, runs of outright denials, one call with an argument
//!    rule, the numbers from `above` up). Each comparison halves the
//!    remaining intervals; a leaf is a jump to a return or to a call's
//!    argument block. Nothing on this path reads an argument, so the
//!    kernel's per-number cache (Linux 5.11+) marks every allowed call
//!    without a rule as always-allowed and skips the filter for it.
//! 3. The argument blocks: load the argument's low 32 bits (the half the
//!    kernel acts on, see `policy::jail`), then `JSET` (any bit of a mask:
//!    each bit is a flag the rule refuses alone) or a chain of `JEQ` (one
//!    of some values); a miss falls to the allow return. Calls with the
//!    same rule share a block.
//! 4. The returns, one instruction per verdict used.
//!
//! Jumps are 8-bit offsets: the generator refuses (fails closed) rather
//! than emit one that does not fit.

use super::policy::{ArgTest, Policy, Rule, Verdict};

pub use libc::sock_filter as Insn;

// Classic BPF opcodes (linux/bpf_common.h).
pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const JMP_JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub const JMP_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JMP_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub const JMP_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub const RET_K: u16 = 0x06; // BPF_RET | BPF_K

// struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer;
// __u64 args[6].
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
/// Where the low 32 bits of argument `i` are.
pub fn off_arg_low(i: u8) -> u32 {
    #[cfg(target_endian = "little")]
    return 16 + 8 * u32::from(i);
    #[cfg(target_endian = "big")]
    return 16 + 8 * u32::from(i) + 4;
}

const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// The return value of a verdict.
pub fn ret_value(v: Verdict) -> u32 {
    match v {
        Verdict::Allow => SECCOMP_RET_ALLOW,
        // The low 16 bits are the errno (SECCOMP_RET_DATA).
        Verdict::Errno(e) => SECCOMP_RET_ERRNO | u32::from(e),
        Verdict::KillProcess => SECCOMP_RET_KILL_PROCESS,
    }
}

/// Where a jump lands before the layout is known.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    /// The next instruction.
    Next,
    /// An instruction of the search tree, by index.
    At(usize),
    /// The first instruction of an argument block.
    Block(usize),
    /// The return of this verdict.
    Ret(Verdict),
}

/// What a number interval leads to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Leaf {
    Ret(Verdict),
    Block(usize),
}

impl Leaf {
    fn target(self) -> Target {
        match self {
            Leaf::Ret(v) => Target::Ret(v),
            Leaf::Block(b) => Target::Block(b),
        }
    }
}

struct Sym {
    code: u16,
    k: u32,
    jt: Target,
    jf: Target,
}

impl Sym {
    fn stmt(code: u16, k: u32) -> Self {
        Sym {
            code,
            k,
            jt: Target::Next,
            jf: Target::Next,
        }
    }
    fn jump(code: u16, k: u32, jt: Target, jf: Target) -> Self {
        Sym { code, k, jt, jf }
    }
}

/// The intervals `[start, next start)` covering every 32-bit number, each
/// with its leaf; neighbours never share a leaf (they are merged), so the
/// search is as short as the policy allows.
fn intervals(policy: &Policy, blocks: &mut Vec<Rule>) -> Result<Vec<(u64, Leaf)>, String> {
    let mut calls = policy.calls.clone();
    calls.sort_by_key(|(nr, _)| *nr);
    if let Some(w) = calls.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("syscall {} has two rules", w[0].0));
    }
    let mut out: Vec<(u64, Leaf)> = Vec::new();
    let mut push = |start: u64, leaf: Leaf| match out.last() {
        Some((_, last)) if *last == leaf => {}
        _ => out.push((start, leaf)),
    };
    let mut next = 0u64;
    for (nr, rule) in calls {
        if let Some((from, _)) = policy.above {
            if nr >= from {
                return Err(format!(
                    "syscall {nr} lies in the range refused from {from}"
                ));
            }
        }
        let leaf = match rule {
            Rule::Always(v) => Leaf::Ret(v),
            Rule::When { arg, test, .. } => {
                if arg > 5 {
                    return Err(format!("syscall {nr}: no argument {arg}"));
                }
                match test {
                    ArgTest::AnyBit(0) => return Err(format!("syscall {nr}: empty mask")),
                    ArgTest::OneOf([]) => return Err(format!("syscall {nr}: no values")),
                    _ => {}
                }
                // Calls with the same rule share one block.
                let b = match blocks.iter().position(|r| *r == rule) {
                    Some(b) => b,
                    None => {
                        blocks.push(rule);
                        blocks.len() - 1
                    }
                };
                Leaf::Block(b)
            }
        };
        if u64::from(nr) > next {
            push(next, Leaf::Ret(Verdict::Allow));
        }
        push(u64::from(nr), leaf);
        next = u64::from(nr) + 1;
    }
    if let Some((from, v)) = policy.above {
        if u64::from(from) > next {
            push(next, Leaf::Ret(Verdict::Allow));
        }
        push(u64::from(from), Leaf::Ret(v));
    } else if next <= u64::from(u32::MAX) {
        push(next, Leaf::Ret(Verdict::Allow));
    }
    Ok(out)
}

/// Emits the search over `iv` (pre-order: a node, its lower half, its upper
/// half) and returns where a jump into it must land.
fn search(iv: &[(u64, Leaf)], prog: &mut Vec<Sym>) -> Target {
    if let [(_, leaf)] = iv {
        return leaf.target();
    }
    // `nr >= start of the upper half`: true → upper half, false → lower.
    // Both halves are non-empty, so the bound is above 0 and fits in 32 bits
    // (every start after the first is at most 2^32 - 1).
    let mid = iv.len() / 2;
    let at = prog.len();
    prog.push(Sym::stmt(JMP_JGE_K, iv[mid].0 as u32));
    let lower = search(&iv[..mid], prog);
    let upper = search(&iv[mid..], prog);
    prog[at].jf = lower;
    prog[at].jt = upper;
    Target::At(at)
}

/// Generates the program for `policy`.
pub fn generate(policy: &Policy) -> Result<Vec<Insn>, String> {
    let mut blocks: Vec<Rule> = Vec::new();
    let iv = intervals(policy, &mut blocks)?;

    // The kill sits right after the check rather than with the other
    // returns, so the check's jump stays short however long the rest is.
    let mut prog = vec![
        Sym::stmt(LD_W_ABS, OFF_ARCH),
        Sym::jump(JMP_JEQ_K, policy.arch, Target::At(3), Target::Next),
        Sym::stmt(RET_K, ret_value(Verdict::KillProcess)),
        Sym::stmt(LD_W_ABS, OFF_NR),
    ];
    let root = search(&iv, &mut prog);
    if root != Target::At(4) {
        // A single interval: the search is empty and A = nr is unused.
        prog.push(Sym::jump(JMP_JA, 0, root, root));
    }

    let mut block_at = Vec::with_capacity(blocks.len());
    for rule in &blocks {
        block_at.push(prog.len());
        let Rule::When { arg, test, then } = *rule else {
            unreachable!("only argument rules get blocks")
        };
        // A = the argument's low 32 bits (see `policy::jail` for why that
        // is the half the kernel acts on).
        prog.push(Sym::stmt(LD_W_ABS, off_arg_low(arg)));
        match test {
            // Any bit of the mask set → `then`; none → allowed.
            ArgTest::AnyBit(mask) => prog.push(Sym::jump(
                JMP_JSET_K,
                mask,
                Target::Ret(then),
                Target::Ret(Verdict::Allow),
            )),
            // Equal to a value → `then`; past the last one → allowed.
            ArgTest::OneOf(values) => {
                for (i, v) in values.iter().enumerate() {
                    let miss = if i + 1 == values.len() {
                        Target::Ret(Verdict::Allow)
                    } else {
                        Target::Next
                    };
                    prog.push(Sym::jump(JMP_JEQ_K, *v, Target::Ret(then), miss));
                }
            }
        }
    }

    // One return per verdict any jump uses, in a fixed order.
    let mut rets: Vec<(Verdict, usize)> = Vec::new();
    let mut used: Vec<Verdict> = Vec::new();
    for s in &prog {
        for t in [s.jt, s.jf] {
            if let Target::Ret(v) = t {
                if !used.contains(&v) {
                    used.push(v);
                }
            }
        }
    }
    used.sort_by_key(|v| ret_value(*v));
    for v in used {
        rets.push((v, prog.len()));
        prog.push(Sym::stmt(RET_K, ret_value(v)));
    }
    if prog.len() > MAX_INSNS {
        return Err(format!(
            "seccomp filter: {} instructions, more than the kernel's {MAX_INSNS}",
            prog.len()
        ));
    }

    let resolve = |from: usize, t: Target| -> Result<u32, String> {
        let to = match t {
            Target::Next => from + 1,
            Target::At(i) => i,
            Target::Block(b) => block_at[b],
            Target::Ret(v) => rets
                .iter()
                .find(|(r, _)| *r == v)
                .map(|(_, i)| *i)
                .ok_or_else(|| format!("seccomp filter: no return for {v:?}"))?,
        };
        if to <= from {
            return Err(format!("seccomp filter: backward jump at {from}"));
        }
        Ok((to - from - 1) as u32)
    };
    let mut out = Vec::with_capacity(prog.len());
    for (i, s) in prog.iter().enumerate() {
        let mut ins = Insn {
            code: s.code,
            jt: 0,
            jf: 0,
            k: s.k,
        };
        if s.code == JMP_JA {
            // JA's offset is k (32 bits); jt/jf are unused.
            ins.k = resolve(i, s.jt)?;
        } else if s.code & 0x07 == 0x05 {
            let (jt, jf) = (resolve(i, s.jt)?, resolve(i, s.jf)?);
            let (Ok(jt), Ok(jf)) = (u8::try_from(jt), u8::try_from(jf)) else {
                return Err(format!(
                    "seccomp filter: a jump of {} instructions at {i} does not fit in 8 bits",
                    jt.max(jf)
                ));
            };
            ins.jt = jt;
            ins.jf = jf;
        }
        out.push(ins);
    }
    Ok(out)
}
