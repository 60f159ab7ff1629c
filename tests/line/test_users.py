"""Users and keys from the command line, and how passwords are kept (issue #9 part 1)."""
from __future__ import annotations

import subprocess

import pytest
from cli_runner import run_in_process

from lineguard.line.config import StationConfig
from lineguard.line.db import Database


def _lineguard(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return run_in_process(*args, input=stdin)


@pytest.fixture
def db(tmp_path):
    database = Database(StationConfig(data_dir=tmp_path).database_url)
    database.upgrade()
    yield database
    database.dispose()


def test_a_password_is_stored_only_as_a_salted_slow_hash(db, tmp_path):
    from lineguard.line.orm import User
    from lineguard.line.users import authenticate, check_password, create_user
    with db.session() as s:
        a = create_user(s, "ana", "same-password-1", "operator")
        b = create_user(s, "ben", "same-password-1", "operator")
        stored_a, stored_b = a.password_hash, b.password_hash
    assert stored_a.startswith("scrypt$16384$8$1$") and stored_a != stored_b     # salted: equal passwords differ
    assert "same-password-1" not in stored_a
    assert check_password("same-password-1", stored_a) and not check_password("same-password-2", stored_a)
    db.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("lineguard.db*"))
    assert b"ana" in raw and b"same-password-1" not in raw
    with db.session() as s:
        assert authenticate(s, "ana", "same-password-1").username == "ana"
        assert authenticate(s, "ana", "wrong-password") is None and authenticate(s, "zed", "same-password-1") is None
        s.get(User, 1).disabled = True
    with db.session() as s:
        assert authenticate(s, "ana", "same-password-1") is None


def test_users_add_list_disable_and_keys_list_revoke_from_the_cli(tmp_path):
    data = str(tmp_path / "st")
    admin = _lineguard("keys", "create", "--data", data, "--role", "admin", "--name", "first-admin", "--new")
    op = _lineguard("keys", "create", "--data", data, "--role", "operator", "--name", "line-3")
    assert admin.returncode == 0 and op.returncode == 0, admin.stderr + op.stderr
    added = _lineguard("users", "add", "maria", "--role", "engineer", "--password-stdin", "--data", data,
                       stdin="maria-tunes-L3\n")
    assert added.returncode == 0 and "maria" in added.stdout, added.stderr
    again = _lineguard("users", "add", "maria", "--role", "operator", "--password-stdin", "--data", data,
                       stdin="another-password\n")
    assert again.returncode != 0 and "exists already" in again.stderr
    short = _lineguard("users", "add", "kai", "--role", "operator", "--password-stdin", "--data", data, stdin="abc\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    listed = _lineguard("users", "list", "--data", data).stdout
    assert "maria\tengineer" in listed and "active" in listed and "maria-tunes-L3" not in listed
    keys = _lineguard("keys", "list", "--data", data).stdout
    assert "first-admin" in keys and "line-3" in keys and op.stdout.strip() not in keys   # never the key itself
    assert _lineguard("users", "disable", "maria", "--data", data).returncode == 0
    assert "disabled" in _lineguard("users", "list", "--data", data).stdout
    assert _lineguard("users", "disable", "nobody", "--data", data).returncode == 2
    op_id = next(line.split("\t")[0] for line in keys.splitlines() if "line-3" in line)
    assert _lineguard("keys", "revoke", op_id, "--data", data).returncode == 0
    assert "revoked" in next(ln for ln in _lineguard("keys", "list", "--data", data).stdout.splitlines()
                             if "line-3" in ln)
    missing = _lineguard("keys", "revoke", "999", "--data", data)
    assert missing.returncode == 2 and "no key with id 999" in missing.stderr
    # each change is in the change log, made "with the command line" by this PC's user
    from lineguard.line.audit import entries
    database = Database(StationConfig(data_dir=tmp_path / "st").database_url)
    log = [(e.action, e.subject) for e in reversed(entries(database))]
    actors = {e.actor for e in entries(database)}
    database.dispose()
    assert log == [("key.created", "key 1 (first-admin)"), ("key.created", "key 2 (line-3)"),
                   ("user.added", "user maria"), ("user.disabled", "user maria"), ("key.revoked", "key 2 (line-3)")]
    assert len(actors) == 1 and actors.pop().startswith("cli")


def test_the_last_admin_cannot_be_revoked_or_disabled_from_the_cli(tmp_path):
    data = str(tmp_path / "st")
    assert _lineguard("keys", "create", "--data", data, "--role", "admin", "--new").returncode == 0
    refused = _lineguard("keys", "revoke", "1", "--data", data)
    assert refused.returncode == 2 and "create another admin first" in refused.stderr
    assert _lineguard("users", "add", "boss", "--role", "admin", "--password-stdin", "--data", data,
                      stdin="boss-of-the-line\n").returncode == 0
    assert _lineguard("keys", "revoke", "1", "--data", data).returncode == 0     # the user is still an admin
    refused = _lineguard("users", "disable", "boss", "--data", data)
    assert refused.returncode == 2 and "last active admin" in refused.stderr
    assert "active" in _lineguard("users", "list", "--data", data).stdout


def test_sessions_and_the_last_admin_rule_on_both_databases(station_factory):
    """Sessions end with their key or user, expire, and the last admin stays (SQLite and PostgreSQL;
    PostgreSQL also takes the row locks that keep two admins from removing each other at once)."""
    import datetime as dt
    import hashlib

    from lineguard.line.auth import create_key, revoke_key
    from lineguard.line.errors import Conflict
    from lineguard.line.orm import SignInSession
    from lineguard.line.sessions import session_caller, start_session
    from lineguard.line.users import active_admins, create_user, disable_user
    st = station_factory()
    with st.db.session() as s:
        key_row, _ = create_key(s, "admin", name="a-key")
        op_row, _ = create_key(s, "operator", name="op")
        by_key = start_session(s, 12, key_id=op_row.id)
        user = create_user(s, "uma", "uma-password", "admin")
        by_user = start_session(s, 12, user_id=user.id)
        old = start_session(s, 12, user_id=user.id)
        s.flush()
        s.query(SignInSession).filter(SignInSession.token_hash == hashlib.sha256(old.encode()).hexdigest()).update(
            {"expires_at": dt.datetime(2000, 1, 1)})
        ids = (key_row.id, op_row.id, user.id)
    with st.db.session() as s:
        assert session_caller(s, by_key) == (ids[1], "operator", "op")
        assert session_caller(s, by_user) == (None, "admin", "uma")
        assert session_caller(s, old) is None and session_caller(s, "not-a-token") is None
        assert active_admins(s) == 2
        assert revoke_key(s, ids[1])
    with st.db.session() as s:
        assert session_caller(s, by_key) is None
        assert revoke_key(s, ids[0])           # uma is still an admin
    with pytest.raises(Conflict, match="create another admin first"):
        with st.db.session() as s:
            disable_user(s, ids[2])
    with st.db.session() as s:
        assert session_caller(s, by_user) == (None, "admin", "uma") and active_admins(s) == 1


def test_users_enable_role_and_password_from_the_cli_and_the_last_admin_keeps_the_role(tmp_path):
    data = str(tmp_path / "st")
    typo = _lineguard("users", "add", "ines", "--role", "admin", "--password-stdin", "--data", data + "x",
                      stdin="ines-admin-pw\n")
    assert typo.returncode == 2 and "no station database" in typo.stderr      # a misspelt --data makes nothing
    added = _lineguard("users", "add", "ines", "--role", "admin", "--password-stdin", "--data", data, "--new",
                       stdin="ines-admin-pw\n")
    assert added.returncode == 0, added.stderr
    # a folder named as the station's in another case: the station beside it is named, as serve names it
    twin = _lineguard("keys", "create", "--role", "operator", "--data", str(tmp_path / "ST"))
    assert twin.returncode == 2 and f"{tmp_path / 'st'} beside it holds a station (a mistyped --data?)" in twin.stderr, \
        twin.stderr
    assert not (tmp_path / "ST").exists()
    last = _lineguard("users", "role", "ines", "--role", "operator", "--data", data)
    assert last.returncode != 0 and "last active admin" in last.stderr
    assert _lineguard("users", "add", "jo", "--role", "operator", "--password-stdin", "--data", data,
                      stdin="jo-password-1\n").returncode == 0
    assert _lineguard("users", "disable", "jo", "--data", data).returncode == 0
    assert _lineguard("users", "enable", "jo", "--data", data).returncode == 0
    promoted = _lineguard("users", "role", "jo", "--role", "admin", "--data", data)
    assert promoted.returncode == 0 and "jo is now admin" in promoted.stdout, promoted.stderr
    # with a second admin, the first may become an operator
    assert _lineguard("users", "role", "ines", "--role", "operator", "--data", data).returncode == 0
    short = _lineguard("users", "password", "jo", "--password-stdin", "--data", data, stdin="abc\n")
    assert short.returncode != 0 and "at least 8" in short.stderr
    reset = _lineguard("users", "password", "jo", "--password-stdin", "--data", data, stdin="jo-password-2\n")
    assert reset.returncode == 0, reset.stderr
    assert _lineguard("users", "enable", "nobody", "--data", data).returncode != 0
    listed = _lineguard("users", "list", "--data", data).stdout
    assert "ines\toperator" in listed and "jo\tadmin" in listed and "disabled" not in listed
    from lineguard.line.audit import entries
    from lineguard.line.users import authenticate
    database = Database(StationConfig(data_dir=tmp_path / "st").database_url)
    try:
        with database.session() as s:
            assert authenticate(s, "jo", "jo-password-1") is None
            assert authenticate(s, "jo", "jo-password-2").role == "admin"
        log = [(e.action, e.subject) for e in reversed(entries(database))]
    finally:
        database.dispose()
    assert log == [("user.added", "user ines"), ("user.added", "user jo"), ("user.disabled", "user jo"),
                   ("user.enabled", "user jo"), ("user.role_changed", "user jo"),
                   ("user.role_changed", "user ines"), ("user.password_set", "user jo")]


def test_an_admin_user_cannot_be_demoted_below_the_last_admin_in_one_transaction(db):
    from lineguard.line.errors import Conflict
    from lineguard.line.users import create_user, set_role
    with db.session() as s:
        admin_id = create_user(s, "kim", "kim-admin-pw", "admin").id
    with pytest.raises(Conflict, match="last active admin"), db.session() as s:
        set_role(s, admin_id, "engineer")
    with db.session() as s:
        from lineguard.line.orm import User
        assert s.get(User, admin_id).role == "admin"
        set_role(s, admin_id, "admin")    # the same role: nothing to refuse
    # a change of several parts (the API's PATCH: password, then role) is undone whole
    from lineguard.line.users import authenticate, set_password
    with pytest.raises(Conflict), db.session() as s:
        set_password(s, admin_id, "kim-new-admin-pw")
        set_role(s, admin_id, "operator")
    with db.session() as s:
        assert authenticate(s, "kim", "kim-admin-pw") is not None


def test_two_admins_removed_at_once_leave_the_station_one(db):
    """SQLite reads the admin count outside any transaction: the second removal, checked
    while the first is written but not committed, counted two admins and went through."""
    import threading
    import time
    from lineguard.line.errors import Conflict
    from lineguard.line.users import active_admins, create_user, set_role
    with db.session() as s:
        a = create_user(s, "ana-admin", "ana-admin-pw", "admin").id
        b = create_user(s, "ben-admin", "ben-admin-pw", "admin").id
    written = threading.Event()

    def first():
        with db.session() as s:
            set_role(s, a, "operator")
            written.set()
            time.sleep(1.0)          # committed only after the second has checked
    t = threading.Thread(target=first)
    t.start()
    assert written.wait(30)
    try:
        with pytest.raises(Conflict, match="last active admin"), db.session() as s:
            set_role(s, b, "operator")
    finally:
        t.join()
    with db.session() as s:
        assert active_admins(s) == 1


def test_a_name_differing_only_in_case_is_one_user_and_a_password_of_spaces_is_refused(db):
    from lineguard.line.errors import Conflict, InvalidRequest
    from lineguard.line.users import authenticate, create_user
    with db.session() as s:
        create_user(s, "qe1", "qe1-password", "engineer")
    with pytest.raises(Conflict, match="'qe1' exists already .names are told apart without case"), db.session() as s:
        create_user(s, "QE1", "another-password", "operator")
    with db.session() as s:
        assert authenticate(s, "QE1", "qe1-password").username == "qe1"      # typed in another case
    with pytest.raises(InvalidRequest, match="only spaces"), db.session() as s:
        create_user(s, "spacey", " " * 8, "operator")
    # two from before the rule: only the exact one signs in, never a guess between them
    from lineguard.line.orm import User
    from lineguard.line.users import hash_password
    with db.session() as s:
        s.add(User(username="Ana", password_hash=hash_password("ana-upper-pw"), role="operator", disabled=False))
        s.add(User(username="ana", password_hash=hash_password("ana-lower-pw"), role="operator", disabled=False))
    with db.session() as s:
        assert authenticate(s, "ANA", "ana-upper-pw") is None and authenticate(s, "ANA", "ana-lower-pw") is None
        assert authenticate(s, "Ana", "ana-upper-pw").username == "Ana"
