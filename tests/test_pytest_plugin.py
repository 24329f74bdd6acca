"""The gocomm pytest plugin, run the way users run it: in a project pytest loads it into."""

from __future__ import annotations

import textwrap

import pytest

from gocomm.plugins import load_registry

pytest_plugins = ["pytester"]

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error::pytest.PytestUnraisableExceptionWarning
    error::RuntimeWarning
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    # An in-process run forgets the modules it imported, but not the attributes their import
    # set on packages imported before it: import every vendor out here, once, so that no
    # run finds a forgotten module's stale classes.
    load_registry()
    pytester.makeini(INI)
    return pytester


def test_fixtures_in_plain_and_async_tests(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app=textwrap.dedent(
            """\
            import asyncio

            from gocomm.messages import Email

            async def notify(container, phone):
                sender = await container.sms.sender()
                return await sender.send("login", {"code": "1"}, phone)

            def test_plain(gocomm_container, gocomm_outbox):
                receipt = asyncio.run(notify(gocomm_container, "+8613800000000"))
                assert receipt.vendor == "memory"
                assert [m.to for m in gocomm_outbox.sent] == [("+8613800000000",)]

            async def test_async(gocomm_container, gocomm_outbox):
                email = await gocomm_container.email.sender()
                await email.send("welcome", Email(subject="hi", text="x"), "a@example.com")
                await notify(gocomm_container, "+8613800000001")
                assert [m.biz for m in gocomm_outbox.sent] == ["welcome", "login"]

            def test_each_test_has_its_own_outbox(gocomm_outbox):
                assert gocomm_outbox.sent == []

            def test_no_stage_by_default(gocomm_container, gocomm_outbox):
                async def resolve():
                    return await gocomm_container.sms.sender()
                sender = asyncio.run(resolve())
                assert type(sender).__name__ == "ValidatingSender"  # every stack starts with it
                # Below it, only views (borrowed, observed for events) down to the outbox.
                seen, inner = [], sender.sender
                while inner is not gocomm_outbox:
                    seen.append(type(inner).__name__)
                    inner = getattr(inner, "target", None) or inner.sender
                assert set(seen) <= {"BorrowedSender", "ObservedVendor"}, seen
            """
        )
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_the_outbox_refuses_what_a_vendor_refuses(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_bad_input=textwrap.dedent(
            """\
            import pytest
            from gocomm import Email, InvalidRecipient

            async def test_directly(gocomm_outbox):
                # The app's container overridden with the outbox alone, say: no other check.
                with pytest.raises(InvalidRecipient, match="13800138000"):
                    await gocomm_outbox.send("login", {"code": "1"}, "13800138000")
                with pytest.raises(InvalidRecipient, match="ada@"):
                    await gocomm_outbox.send("hi", Email(subject="s", text="t"), "ada@")
                await gocomm_outbox.send("login", {"code": "1"}, "+86 138 0013 8000")
                assert [m.to for m in gocomm_outbox.sent] == [("+8613800138000",)]

            async def test_through_the_container(gocomm_container, gocomm_outbox):
                sender = await gocomm_container.sms.sender()
                with pytest.raises(InvalidRecipient):
                    await sender.send("login", {"code": "1"}, "13800138000")
                assert gocomm_outbox.sent == []
            """
        )
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_channel_the_settings_leave_out_is_not_configured(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_sms_only=textwrap.dedent(
            """\
            import pytest
            from gocomm import ConfigError

            @pytest.fixture
            def gocomm_settings():
                return {"sms": {"vendors": [{"plugin": "memory"}]}}

            async def test_email_is_not_configured(gocomm_container, gocomm_outbox):
                sms = await gocomm_container.sms.sender()
                await sms.send("login", {"code": "1"}, "+8613800138000")
                with pytest.raises(ConfigError, match="email channel is not configured"):
                    await gocomm_container.email.sender()
                assert len(gocomm_outbox.sent) == 1
            """
        )
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_settings_fixture_adds_stages_and_teardown_closes_them(project: pytest.Pytester) -> None:
    project.makeconftest(
        textwrap.dedent(
            """\
            import pytest

            @pytest.fixture
            def gocomm_settings():
                return {
                    "sms": {
                        "vendors": [{"plugin": "memory"}, {"plugin": "memory"}],
                        "failover": {"mode": "timeout", "threshold": 1, "restore_after": 3600},
                        "retry": {"max_attempts": 2},
                    }
                }
            """
        )
    )
    project.makepyfile(
        test_stages=textwrap.dedent(
            """\
            import asyncio

            import pytest
            from gocomm.failover import TimeoutFailoverSender
            from gocomm.retryable import RetrySender
            from gocomm.testing import ScriptedSender

            left_open = []

            # The module's loop outlives the test, so only the fixture's teardown can close
            # what the test leaves open.
            @pytest.mark.asyncio(loop_scope="module")
            async def test_stages_around_the_outbox(gocomm_container, gocomm_outbox):
                sender = await gocomm_container.sms.sender()
                retry = sender.sender.target
                assert isinstance(retry, RetrySender)
                failover = await gocomm_container.sms.failover()
                assert isinstance(failover, TimeoutFailoverSender)
                await sender.send("login", {"code": "1"}, "+8613800000000")
                assert len(gocomm_outbox.sent) == 1
                left_open.append(failover)

            def test_left_open_by_a_plain_test(gocomm_container):
                async def resolve():
                    await gocomm_container.sms.sender()
                    return await gocomm_container.sms.failover()
                left_open.append(asyncio.run(resolve()))

            def test_teardown_closed_what_they_left_open():
                assert len(left_open) == 2
                assert all(failover.closed for failover in left_open)

            @pytest.fixture
            def flaky_sms(gocomm_container):
                scripted = ScriptedSender([ConnectionError("down")])
                with gocomm_container.sms.vendors.override([scripted]):
                    yield scripted

            async def test_override_from_a_fixture(gocomm_container, flaky_sms, gocomm_outbox):
                sender = await gocomm_container.sms.sender()
                receipt = await sender.send("login", {"code": "1"}, "+8613800000000")
                assert receipt.attempts == 2
                assert len(flaky_sms.calls) == 2 and gocomm_outbox.sent == []
            """
        )
    )
    result = project.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_plugin_imports_gocomm_lazily_and_nothing_is_autouse(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_lazy=textwrap.dedent(
            """\
            import sys

            def test_nothing_heavy_was_imported(request):
                for module in ("gocomm.containers", "gocomm.config", "dependency_injector"):
                    assert module not in sys.modules, module
                assert not any(name.startswith("gocomm_") for name in request.fixturenames)
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    listing = project.runpytest_inprocess("-p", "no:cacheprovider", "--fixtures")
    listing.stdout.fnmatch_lines(
        ["gocomm_settings -- *", "gocomm_outbox -- *", "gocomm_container -- *"],
        consecutive=False,
    )
