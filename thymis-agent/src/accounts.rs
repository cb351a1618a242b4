//! User and group names to ids: from the system databases on the real host, from
//! `<root>/etc/passwd` and `<root>/etc/group` under another root.

use std::ffi::CString;
use std::io;

use crate::device::Device;

/// Where names are looked up.
#[derive(Debug, Clone)]
pub enum Accounts {
    /// The running system (NSS).
    System,
    /// The text of a passwd and a group file.
    Files {
        /// `/etc/passwd` lines.
        passwd: String,
        /// `/etc/group` lines.
        group: String,
    },
}

impl Accounts {
    /// The accounts of `device`: the system's for the real host, else its files (missing
    /// files count as empty).
    pub fn of(device: &Device) -> io::Result<Self> {
        if device.is_host() {
            return Ok(Accounts::System);
        }
        let read = |rel: &str| {
            crate::files::read_optional(&device.path(rel)).map(Option::unwrap_or_default)
        };
        Ok(Accounts::Files {
            passwd: read("etc/passwd")?,
            group: read("etc/group")?,
        })
    }

    /// The uid of user `name` (a number is taken as the id itself).
    pub fn uid(&self, name: &str) -> Option<u32> {
        if let Ok(id) = name.parse() {
            return Some(id);
        }
        match self {
            Accounts::System => system_uid(name),
            Accounts::Files { passwd, .. } => lookup(passwd, name),
        }
    }

    /// The gid of group `name` (a number is taken as the id itself).
    pub fn gid(&self, name: &str) -> Option<u32> {
        if let Ok(id) = name.parse() {
            return Some(id);
        }
        match self {
            Accounts::System => system_gid(name),
            Accounts::Files { group, .. } => lookup(group, name),
        }
    }
}

/// The third field of the line whose first field is `name` (both file formats agree there).
fn lookup(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.trim().parse().ok()
    })
}

fn system_uid(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: plain data, filled by getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the given sizes.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

fn system_gid(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: plain data, filled by getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the given sizes.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lookup() {
        let accounts = Accounts::Files {
            passwd: "root:x:0:0::/root:/bin/sh\nsshd:x:74:74::/:/bin/false\n".into(),
            group: "root:x:0:\nwheel:x:1:alice\n".into(),
        };
        assert_eq!(accounts.uid("sshd"), Some(74));
        assert_eq!(accounts.uid("ssh"), None);
        assert_eq!(accounts.uid("1234"), Some(1234));
        assert_eq!(accounts.gid("wheel"), Some(1));
        assert_eq!(accounts.gid("alice"), None);
    }

    #[test]
    fn system_lookup_knows_root() {
        assert_eq!(Accounts::System.uid("root"), Some(0));
        assert_eq!(Accounts::System.gid("root"), Some(0));
        assert_eq!(Accounts::System.uid("no-such-user-thymis"), None);
    }
}
