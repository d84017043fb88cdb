"""The desk's two languages and the viewer's time zone.

The words of the ledger itself — event types, phases, roles, obligations — come in both
languages from the catalogue and the policy file; this module holds only the desk's own
words. The language is the viewer's choice (a cookie set by the switch on every page),
else the browser's Accept-Language; the time zone likewise (a cookie the page's script or
the settings form sets), else UTC. Times are always shown with their offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from starlette.requests import Request

LANGUAGES = ("en", "zh")
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}

MESSAGES: dict[str, dict[str, str]] = {
    "app.title": {"en": "casetrail compliance desk", "zh": "casetrail 合规工作台"},
    "app.subtitle": {"en": "compliance desk", "zh": "合规工作台"},
    "nav.cases": {"en": "Cases", "zh": "案件"},
    "nav.reports": {"en": "Reports", "zh": "报表"},
    "nav.verify": {"en": "Verify a bundle", "zh": "核验证据包"},
    "nav.sign_out": {"en": "Sign out", "zh": "退出"},
    "nav.skip": {"en": "Skip to content", "zh": "跳到正文"},
    "nav.language": {"en": "Language", "zh": "语言"},
    "nav.timezone": {"en": "Time zone", "zh": "时区"},
    "nav.apply": {"en": "Apply", "zh": "应用"},
    "nav.signed_in_as": {"en": "Signed in as", "zh": "当前身份"},
    "sign_in.title": {"en": "Sign in", "zh": "登录"},
    "sign_in.key": {"en": "API key", "zh": "API 密钥"},
    "sign_in.help": {
        "en": "Paste the API key you were given (casetrail demo prints one). The desk shows "
        "exactly what this key may read over the API.",
        "zh": "粘贴分配给您的 API 密钥（casetrail demo 会打印一个）。工作台只显示该密钥通过 API 可读取的内容。",
    },
    "sign_in.submit": {"en": "Sign in", "zh": "登录"},
    "sign_in.failed": {
        "en": "That key is not valid (unknown, revoked or mistyped).",
        "zh": "该密钥无效（不存在、已吊销或输入有误）。",
    },
    "csrf.failed": {
        "en": "The form expired. Please try again.",
        "zh": "表单已过期，请重试。",
    },
    "cases.title": {"en": "Cases", "zh": "案件"},
    "cases.filters": {"en": "Filter cases", "zh": "筛选案件"},
    "cases.agency": {"en": "Agency", "zh": "机构"},
    "cases.agent": {"en": "Agent", "zh": "经纪人"},
    "cases.phase": {"en": "Phase", "zh": "阶段"},
    "cases.any": {"en": "Any", "zh": "全部"},
    "cases.open_breaches": {
        "en": "Only cases with open breaches",
        "zh": "仅显示存在未结违规的案件",
    },
    "cases.severity": {"en": "Worst breach at least", "zh": "最严重违规不低于"},
    "cases.opened_from": {"en": "Opened from", "zh": "开立日期自"},
    "cases.opened_to": {"en": "Opened before", "zh": "开立日期早于"},
    "cases.sort": {"en": "Sort by", "zh": "排序"},
    "cases.sort.case_id": {"en": "Case id", "zh": "案件编号"},
    "cases.sort.updated": {"en": "Last recorded, newest first", "zh": "最近记录（新到旧）"},
    "cases.sort.opened": {"en": "Opened, newest first", "zh": "开立时间（新到旧）"},
    "cases.sort.breaches": {"en": "Most breaches first", "zh": "违规最多优先"},
    "cases.apply": {"en": "Show cases", "zh": "显示案件"},
    "cases.count": {"en": "Cases matching", "zh": "符合条件的案件"},
    "cases.count_breached": {"en": "with open breaches", "zh": "存在未结违规"},
    "cases.count_complaints": {"en": "open complaints", "zh": "未结投诉"},
    "cases.none": {"en": "No case matches these filters.", "zh": "没有符合条件的案件。"},
    "cases.col.case": {"en": "Case", "zh": "案件"},
    "cases.col.kind": {"en": "Kind", "zh": "类型"},
    "cases.col.breaches": {"en": "Open breaches", "zh": "未结违规"},
    "cases.col.updated": {"en": "Last recorded", "zh": "最近记录"},
    "cases.col.sound": {"en": "Chain", "zh": "链"},
    "cases.previous": {"en": "Previous page", "zh": "上一页"},
    "cases.next": {"en": "Next page", "zh": "下一页"},
    "cases.pages": {"en": "More cases", "zh": "更多案件"},
    "cases.first": {"en": "First page", "zh": "第一页"},
    "case.header": {"en": "Case", "zh": "案件"},
    "case.kind": {"en": "Kind", "zh": "类型"},
    "case.phase": {"en": "Phase", "zh": "阶段"},
    "case.agency": {"en": "Agency", "zh": "机构"},
    "case.parties": {"en": "Parties", "zh": "当事人"},
    "case.agents": {"en": "Agents", "zh": "经纪人"},
    "case.supervisor": {"en": "supervised by", "zh": "主管"},
    "case.as_of": {"en": "As the ledger stood", "zh": "账本状态时点"},
    "case.as_of.now": {"en": "now (everything recorded)", "zh": "现在（全部记录）"},
    "case.as_of.after": {"en": "after event", "zh": "事件之后"},
    "case.as_of.show": {"en": "Show", "zh": "查看"},
    "case.as_of.note": {
        "en": "Showing the case, its timeline and its verdicts as the ledger stood after event",
        "zh": "以下为账本记录至该事件之后的案件、时间线与判定：事件",
    },
    "case.as_of.recorded": {"en": "recorded", "zh": "记录于"},
    "case.downloads": {"en": "Downloads", "zh": "下载"},
    "case.bundle": {
        "en": "Dispute bundle (JSON, verifiable offline)",
        "zh": "争议证据包（JSON，可离线核验）",
    },
    "case.verdicts_csv": {"en": "Verdicts (CSV)", "zh": "判定结果（CSV）"},
    "badge.sound": {"en": "Chain sound", "zh": "哈希链完整"},
    "badge.included": {
        "en": "included in the signed tree head of size",
        "zh": "已纳入签名树头，规模",
    },
    "badge.at": {"en": "signed", "zh": "签署于"},
    "badge.proof": {"en": "inclusion proof", "zh": "包含证明"},
    "badge.pending": {
        "en": "not yet covered by a signed tree head (sealed within seconds)",
        "zh": "尚未纳入签名树头（数秒内完成）",
    },
    "badge.broken": {"en": "Does not verify", "zh": "核验失败"},
    "badge.first_bad": {"en": "first bad event", "zh": "首个异常事件"},
    "timeline.title": {"en": "Timeline", "zh": "时间线"},
    "timeline.occurred": {"en": "Occurred", "zh": "发生时间"},
    "timeline.recorded": {"en": "Recorded", "zh": "记录时间"},
    "timeline.backdated": {"en": "late entry", "zh": "补录"},
    "timeline.backdated_note": {
        "en": "recorded long after it occurred: weak evidence",
        "zh": "发生很久之后才记录：证明力较弱",
    },
    "timeline.actor": {"en": "By", "zh": "操作人"},
    "timeline.recorded_by": {"en": "Recorded with key", "zh": "记录所用密钥"},
    "timeline.summary": {"en": "events", "zh": "个事件"},
    "timeline.late_summary": {
        "en": "recorded more than {late} after they occurred (late entries: weaker evidence)",
        "zh": "个在发生 {late} 之后才记录（补录：证明力较弱）",
    },
    "timeline.earlier": {"en": "Earlier events", "zh": "较早的事件"},
    "timeline.later": {"en": "Later events", "zh": "较晚的事件"},
    "timeline.page": {
        "en": "Events {first}–{last} of {total}",
        "zh": "第 {first}–{last} 个事件，共 {total} 个",
    },
    "timeline.evidence": {"en": "Documents", "zh": "文件"},
    "timeline.sealed": {"en": "sealed personal data", "zh": "已加密的个人信息"},
    "timeline.hash": {"en": "Event hash", "zh": "事件哈希"},
    "timeline.not_shown": {
        "en": "events after the first bad one are not shown",
        "zh": "首个异常事件之后的事件不予显示",
    },
    "verdicts.title": {"en": "Obligations", "zh": "义务判定"},
    "verdicts.policy": {"en": "Policy", "zh": "政策"},
    "verdicts.status": {"en": "Status", "zh": "状态"},
    "verdicts.obligation": {"en": "Obligation", "zh": "义务"},
    "verdicts.due": {"en": "Due", "zh": "期限"},
    "verdicts.responsible": {"en": "Responsible", "zh": "责任方"},
    "verdicts.accountable": {"en": "accountable", "zh": "责任主体"},
    "verdicts.performer": {"en": "performer", "zh": "经办人"},
    "verdicts.supervisor": {"en": "supervisor", "zh": "主管"},
    "verdicts.client_share": {"en": "client share", "zh": "客户责任份额"},
    "verdicts.source": {"en": "Source", "zh": "依据"},
    "verdicts.basis": {"en": "basis", "zh": "可靠度"},
    "verdicts.evidence": {"en": "Evidence", "zh": "证据"},
    "verdicts.why": {"en": "Why", "zh": "理由"},
    "verdicts.show_all": {"en": "Show obligations that do not apply", "zh": "显示不适用的义务"},
    "verdicts.hide_inapplicable": {
        "en": "Hide obligations that do not apply",
        "zh": "隐藏不适用的义务",
    },
    "verdicts.settled.met": {"en": "met at", "zh": "履行于"},
    "verdicts.settled.breached": {"en": "breached at", "zh": "违规于"},
    "verdicts.settled.waived": {"en": "waived at", "zh": "豁免于"},
    "verdicts.basis_title": {"en": "How firm the legal ground is", "zh": "法律依据的可靠程度"},
    "verdicts.none": {"en": "No verdicts.", "zh": "没有判定。"},
    "status.met": {"en": "met", "zh": "已履行"},
    "status.breached": {"en": "breached", "zh": "违规"},
    "status.pending": {"en": "pending", "zh": "待履行"},
    "status.not_applicable": {"en": "not applicable", "zh": "不适用"},
    "status.waived": {"en": "waived", "zh": "已豁免"},
    "severity.low": {"en": "low", "zh": "低"},
    "severity.medium": {"en": "medium", "zh": "中"},
    "severity.high": {"en": "high", "zh": "高"},
    "severity.critical": {"en": "critical", "zh": "严重"},
    "reports.title": {"en": "Reports", "zh": "报表"},
    "reports.period_from": {"en": "From month", "zh": "起始月份"},
    "reports.period_to": {"en": "To month (inclusive)", "zh": "截止月份（含）"},
    "reports.filters": {"en": "Agency, agent and period", "zh": "机构、经纪人与期间"},
    "reports.apply": {"en": "Show report", "zh": "显示报表"},
    "reports.severity": {"en": "Severity", "zh": "严重程度"},
    "reports.breaches": {
        "en": "Breaches by obligation and severity",
        "zh": "按义务与严重程度统计的违规",
    },
    "reports.by_agent": {"en": "Breaches by agent", "zh": "按经纪人统计的违规"},
    "reports.met": {"en": "Met", "zh": "已履行"},
    "reports.breached": {"en": "Breached", "zh": "违规"},
    "reports.complaints": {
        "en": "Complaint handling against the targets",
        "zh": "投诉处理时效（对照目标）",
    },
    "reports.complaints.count": {"en": "Complaints", "zh": "投诉数"},
    "reports.complaints.ack": {"en": "Acknowledged within", "zh": "受理时限内"},
    "reports.complaints.solution": {"en": "First solution within", "zh": "首次方案时限内"},
    "reports.complaints.median": {"en": "median hours", "zh": "中位小时数"},
    "reports.complaints.open": {"en": "still waiting", "zh": "仍在等待"},
    "reports.aftercare": {"en": "Follow-up after handover", "zh": "交房后回访"},
    "reports.aftercare.handovers": {"en": "Handovers", "zh": "交房数"},
    "reports.aftercare.followed": {"en": "Followed up", "zh": "已回访"},
    "reports.satisfaction": {"en": "Satisfaction scores", "zh": "满意度评分"},
    "reports.satisfaction.mean": {"en": "Mean score", "zh": "平均分"},
    "reports.satisfaction.declined": {"en": "Declined the survey", "zh": "拒绝调查"},
    "reports.csv": {"en": "Download as CSV", "zh": "下载 CSV"},
    "reports.none": {"en": "Nothing in this period.", "zh": "该期间无数据。"},
    "reports.score": {"en": "Score", "zh": "分数"},
    "reports.responses": {"en": "Responses", "zh": "答复数"},
    "reports.responses_count": {"en": "responses", "zh": "份答复"},
    "verify.title": {"en": "Verify a dispute bundle", "zh": "核验争议证据包"},
    "verify.help": {
        "en": "Upload a bundle exported from a casetrail ledger. It is checked here with the "
        "same offline verifier anyone can run; it is never stored or compared with this "
        "ledger.",
        "zh": "上传从 casetrail 账本导出的证据包。此处使用任何人都可离线运行的同一核验程序进行检查；证据包不会被保存，也不会与本账本比对。",
    },
    "verify.bundle": {"en": "Bundle file", "zh": "证据包文件"},
    "verify.key": {
        "en": "Public key to trust (PEM or base64)",
        "zh": "受信任的公钥（PEM 或 base64）",
    },
    "verify.key_note": {
        "en": "This ledger's published key is filled in. Paste another ledger's key to check "
        "its bundles; clear the field to check against the key inside the bundle, which "
        "proves nothing about who signed it.",
        "zh": "已填入本账本公布的公钥。核验其他账本的证据包时请粘贴其公钥；清空此栏则使用证据包自带的公钥，"
        "但这无法证明签署方是谁。",
    },
    "verify.later": {
        "en": "A later signed tree head (optional, JSON)",
        "zh": "较新的签名树头（可选，JSON）",
    },
    "verify.consistency": {"en": "Its consistency proof (JSON)", "zh": "对应的一致性证明（JSON）"},
    "verify.submit": {"en": "Verify", "zh": "核验"},
    "verify.sound": {"en": "The bundle is sound.", "zh": "证据包核验通过。"},
    "verify.sound_own_key": {
        "en": "The bundle is consistent, but who made it was not checked.",
        "zh": "证据包内部一致，但未核实其签署方。",
    },
    "verify.broken": {"en": "The bundle does not verify.", "zh": "证据包核验未通过。"},
    "verify.own_key": {
        "en": "Checked against the key inside the bundle; give the ledger's published key to "
        "be sure who signed it.",
        "zh": "使用证据包自带公钥核验；如需确认签署方，请提供账本公布的公钥。",
    },
    "verify.check": {"en": "Failed check", "zh": "未通过的检查"},
    "error.title": {"en": "Something is wrong", "zh": "出现问题"},
    "error.back": {"en": "Back to the cases", "zh": "返回案件列表"},
}

# Words of the ledger that neither the catalogue nor the policy translates.
VALUES = {
    "kind": {
        "sale": {"en": "sale", "zh": "出售"},
        "purchase": {"en": "purchase", "zh": "购买"},
        "lease": {"en": "lease (letting)", "zh": "出租"},
        "rental": {"en": "rental (renting)", "zh": "承租"},
    },
    "party_role": {
        "seller": {"en": "seller", "zh": "卖方"},
        "buyer": {"en": "buyer", "zh": "买方"},
        "landlord": {"en": "landlord", "zh": "出租人"},
        "tenant": {"en": "tenant", "zh": "承租人"},
        "co_owner": {"en": "co-owner", "zh": "共有人"},
        "prospect": {"en": "prospect", "zh": "意向客户"},
    },
    "key_role": {
        "integrator": {"en": "integrator", "zh": "集成方"},
        "agent": {"en": "agent", "zh": "经纪人"},
        "compliance": {"en": "compliance officer", "zh": "合规专员"},
        "auditor": {"en": "auditor", "zh": "审计员"},
        "admin": {"en": "administrator", "zh": "管理员"},
    },
    "basis": {
        "V": {"en": "checked against the law's text", "zh": "已对照法规原文核实"},
        "V2": {"en": "from a secondary source", "zh": "来自二手资料"},
        "R": {"en": "recalled, not yet verified", "zh": "凭记忆，尚未核实"},
        "I": {"en": "internal practice", "zh": "内部规范"},
        "D": {"en": "court practice", "zh": "司法实践"},
    },
}


def value(group: str, raw: Any, lang: str) -> str:
    """A ledger value in the viewer's language; an unknown one as it was recorded."""
    entry = VALUES.get(group, {}).get(str(raw))
    return entry.get(lang, entry["en"]) if entry else ("—" if raw is None else str(raw))


UNITS = {
    "D": {"en": ("day", "days"), "zh": ("天", "天")},
    "H": {"en": ("hour", "hours"), "zh": ("小时", "小时")},
    "W": {"en": ("week", "weeks"), "zh": ("周", "周")},
}


def duration(text: str, lang: str) -> str:
    """A policy's simple ISO 8601 duration in words (P2D: 2 days); others as written."""
    body = text.removeprefix("PT") if text.startswith("PT") else text.removeprefix("P")
    number, unit = body[:-1], body[-1:]
    if not number.isdigit() or unit not in UNITS:
        return text
    one, many = UNITS[unit].get(lang, UNITS[unit]["en"])
    space = "" if lang == "zh" else " "
    return f"{number}{space}{one if number == '1' else many}"


CHECK_NAMES = {
    "format": {"en": "the bundle's format", "zh": "证据包格式"},
    "public-key": {"en": "the public key", "zh": "公钥"},
    "log-id": {"en": "the log id", "zh": "日志标识"},
    "tree-head": {"en": "the tree head", "zh": "树头"},
    "signature": {"en": "the tree head's signature", "zh": "树头签名"},
    "event-hash": {"en": "an event's hash", "zh": "事件哈希"},
    "chain": {"en": "the case's hash chain", "zh": "案件哈希链"},
    "inclusion": {"en": "an inclusion proof", "zh": "包含证明"},
    "consistency": {"en": "consistency with the later tree head", "zh": "与较新树头的一致性"},
    "case-head": {
        "en": "the signed head of the case (events missing at the end?)",
        "zh": "案件的签名链头（末尾事件是否缺失？）",
    },
}


def text(key: str, lang: str) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry["en"]


def choose_language(request: Request) -> str:
    chosen = request.query_params.get("lang") or request.cookies.get("desk_lang")
    if chosen in LANGUAGES:
        return chosen
    return _from_accept_language(request.headers.get("accept-language", ""))


def _from_accept_language(header: str) -> str:
    weighted = []
    for part in header.split(","):
        tag, _, quality = part.strip().partition(";q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            weight = 0.0
        weighted.append((weight, tag.strip().lower()))
    for _, tag in sorted(weighted, key=lambda item: -item[0]):
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


SUGGESTED_ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Macau",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Australia/Sydney",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Vancouver",
    "Pacific/Auckland",
    "UTC",
)
"""Offered in the time-zone field; any other IANA name can be typed."""


@cache
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def choose_zone(request: Request) -> tuple[str, tzinfo]:
    name = request.query_params.get("tz") or request.cookies.get("desk_tz") or "UTC"
    # Only names of the zone database: ZoneInfo would try to open anything else as a path.
    if name not in known_zones():
        return "UTC", UTC
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return "UTC", UTC


def show_moment(value: str | None, zone: tzinfo) -> str:
    """A timestamp in the viewer's zone, with its offset: 2024-03-01 10:00:00 +08:00."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    local = moment.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"
