//! The hot paths allocate nothing: generating and verifying codes and
//! hashing a secret must not touch the heap.
//!
//! A counting global allocator wraps `System` and counts, per thread, every
//! allocation, zeroed allocation and reallocation. Each test builds its
//! inputs first and measures only the call under test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use ninsho::hash::{HashKey, KeyId, KeyedHasher};
use ninsho::otp::{Hotp, OtpSecret, Rejection, Totp, Window};

struct Counting;

thread_local! {
    // Const-initialised and without `Drop`, so touching it from inside the
    // allocator never allocates or registers a destructor.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the number of heap allocations the
/// current thread made during the call. The result is returned, not dropped,
/// inside the measured region.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = black_box(f());
    let after = ALLOCATIONS.with(Cell::get);
    (r, after - before)
}

const SEED: &[u8; 20] = b"12345678901234567890";
const T: u64 = 1_700_000_000;

fn totp() -> Totp {
    Totp::builder(OtpSecret::from_bytes(SEED.to_vec()).unwrap())
        .account("alloc")
        .window(Window::new(1, 1))
        .build()
        .unwrap()
}

fn hotp() -> Hotp {
    Hotp::builder(OtpSecret::from_bytes(SEED.to_vec()).unwrap())
        .account("alloc")
        .build()
        .unwrap()
}

/// A six-digit code that matches none of `taken`.
fn code_outside(taken: &[String]) -> String {
    (0..1_000_000u32)
        .map(|v| format!("{v:06}"))
        .find(|c| !taken.contains(c))
        .unwrap()
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = count(|| Vec::<u8>::with_capacity(1));
    assert!(n >= 1, "an intentional allocation was not counted");
    drop(v);
    let (s, n) = count(|| format!("{}", black_box(123_456)));
    assert!(n >= 1, "format! was not counted");
    assert_eq!(s, "123456");
    let (_, n) = count(|| black_box(1u64) + 1);
    assert_eq!(n, 0, "arithmetic was counted as an allocation");
}

#[test]
fn totp_code_at_allocates_nothing() {
    let totp = totp();
    let (code, n) = count(|| totp.code_at(black_box(T)));
    assert_eq!(n, 0, "Totp::code_at allocated");
    assert_eq!(code.to_string(), totp.code_at_step(T / 30).to_string());
    // RFC 6238 Appendix B, SHA-1 at T = 59 (last six of 94287082).
    let (code, n) = count(|| totp.code_at(black_box(59)));
    assert_eq!(n, 0, "Totp::code_at allocated");
    assert_eq!(code.to_string(), "287082");
    let (_, n) = count(|| totp.code_at_step(black_box(T / 30)));
    assert_eq!(n, 0, "Totp::code_at_step allocated");
}

#[test]
fn totp_verify_allocates_nothing() {
    let totp = totp();
    let step = T / 30;
    let window: Vec<String> = (step - 1..=step + 1)
        .map(|s| totp.code_at_step(s).to_string())
        .collect();
    let current = window[1].clone();
    let edge = window[0].clone();
    let wrong = code_outside(&window);
    let spaced = format!("{} {}", &current[..3], &current[3..]);
    let full_width: String = current
        .chars()
        .map(|c| char::from_u32(u32::from(c) - u32::from('0') + u32::from('０')).unwrap())
        .collect();
    let malformed = String::from("12a456");

    let (r, n) = count(|| totp.verify(black_box(&wrong), black_box(T), None));
    assert_eq!(r, Err(Rejection::Mismatch));
    assert_eq!(n, 0, "rejecting a wrong code allocated");

    let (r, n) = count(|| totp.verify(black_box(&current), black_box(T), None));
    assert_eq!(r.map(|m| (m.step, m.drift)), Ok((step, 0)));
    assert_eq!(n, 0, "accepting the current code allocated");

    let (r, n) = count(|| totp.verify(black_box(&edge), black_box(T), None));
    assert_eq!(r.map(|m| (m.step, m.drift)), Ok((step - 1, -1)));
    assert_eq!(n, 0, "accepting the window-edge code allocated");

    let (r, n) = count(|| totp.verify(black_box(&current), black_box(T), Some(step)));
    assert_eq!(r, Err(Rejection::Replayed));
    assert_eq!(n, 0, "refusing a replay allocated");

    let (r, n) = count(|| totp.verify(black_box(&spaced), black_box(T), None));
    assert!(r.is_ok());
    assert_eq!(n, 0, "accepting a spaced code allocated");

    let (r, n) = count(|| totp.verify(black_box(&full_width), black_box(T), None));
    assert!(r.is_ok());
    assert_eq!(n, 0, "accepting a full-width code allocated");

    let (r, n) = count(|| totp.verify(black_box(&malformed), black_box(T), None));
    assert_eq!(r, Err(Rejection::Malformed));
    assert_eq!(n, 0, "refusing a malformed code allocated");
}

#[test]
fn keyed_hash_allocates_nothing() {
    let hasher = KeyedHasher::new(HashKey::new(KeyId(1), &[0x42; 32]).unwrap());
    let (h, n) = count(|| hasher.hash(black_box(b"ctx"), black_box(b"123456")));
    assert_eq!(n, 0, "KeyedHasher::hash allocated");
    let (ok, n) = count(|| hasher.verify(black_box(b"ctx"), black_box(b"123456"), &h));
    assert_eq!(ok, Ok(true));
    assert_eq!(n, 0, "KeyedHasher::verify allocated");
}

#[test]
fn hotp_allocates_nothing() {
    let hotp = hotp();
    // RFC 4226 Appendix D, counter 0.
    let (code, n) = count(|| hotp.code(black_box(0)));
    assert_eq!(n, 0, "Hotp::code allocated");
    assert_eq!(code.to_string(), "755224");

    let ahead: Vec<String> = (10..=15).map(|c| hotp.code(c).to_string()).collect();
    let right = ahead[3].clone();
    let wrong = code_outside(&ahead);

    let (r, n) = count(|| hotp.verify(black_box(&right), black_box(10)));
    assert_eq!(r.map(|m| m.counter), Ok(13));
    assert_eq!(n, 0, "Hotp::verify (accept) allocated");

    let (r, n) = count(|| hotp.verify(black_box(&wrong), black_box(10)));
    assert_eq!(r, Err(Rejection::Mismatch));
    assert_eq!(n, 0, "Hotp::verify (reject) allocated");
}
