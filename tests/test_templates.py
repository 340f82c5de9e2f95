"""Message templates: the real catalogue renders what marketing wrote, and a broken
template is refused when the catalogue loads (worker start), naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models.settings import PROJECT_ROOT
from rules.templates import (
    ContactFields,
    LinkContext,
    RenderedEmail,
    TemplateCatalog,
    TemplateError,
)

LINKS = LinkContext(
    utm={"utm_source": "journeys", "utm_campaign": "welcome-series", "utm_content": "day0"},
    unsubscribe_url="https://journeys.example/u/token123",
)


UTM = "utm_source=journeys&utm_campaign=welcome-series&utm_content=day0"
HTML_UTM = UTM.replace("&", "&amp;")


def render(
    catalog: TemplateCatalog,
    name: str,
    *,
    first_name: str | None = None,
    company: str | None = None,
    tags: tuple[str, ...] = (),
) -> RenderedEmail:
    """Render email `name` for a contact given as keyword fields."""
    return catalog.render_email(name, ContactFields(first_name, company, tags), LINKS)


REAL_TEMPLATES = PROJECT_ROOT / "templates"

VALID_FIELDS = {
    "subject": "Hello from {{ brand.name }}",
    "preview": "A short preview",
    "opening": 'Hi {{ first_name | default: "there" }}!',
    "cta_label": "Read more",
    "cta_url": "{{ brand.website_url }}/more",
    "closing": "Bye,\n{{ brand.sender_name }}",
}


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    """The project's real templates folder, loaded once."""
    return TemplateCatalog(REAL_TEMPLATES)


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    """A templates folder with the real brand and layouts and no messages yet."""
    directory = tmp_path / "templates"
    directory.mkdir()
    shutil.copy(REAL_TEMPLATES / "brand.toml", directory / "brand.toml")
    shutil.copytree(REAL_TEMPLATES / "layouts", directory / "layouts")
    return directory


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_message(directory: Path, name: str, **overrides: str | None) -> Path:
    """Write `<directory>/<name>.toml`; an override of None drops that field."""
    fields = {**VALID_FIELDS, **overrides}
    path = directory / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{key} = {_toml_string(value)}\n" for key, value in fields.items() if value),
        encoding="utf-8",
    )
    return path


# --- the real catalogue -------------------------------------------------------------


def test_real_catalogue_lists_the_welcome_series(catalog: TemplateCatalog) -> None:
    assert [name for name in catalog.names if name.startswith("welcome-series/")] == [
        "welcome-series/day0",
        "welcome-series/day0@b",  # arm b of the Day-0 subject test
        "welcome-series/day1",
        "welcome-series/day2",
        "welcome-series/day4",
        "welcome-series/day7",
    ]


def test_day0_greets_the_contact_by_name_or_falls_back(catalog: TemplateCatalog) -> None:
    named = render(catalog, "welcome-series/day0", first_name="Ada")
    anonymous = render(catalog, "welcome-series/day0")
    blank = render(catalog, "welcome-series/day0", first_name=None)

    assert named.text.startswith("Hey Ada!\n")
    assert anonymous.text.startswith("Hey there!\n")
    assert blank.text.startswith("Hey there!\n")
    assert '<p style="margin:0 0 16px;">Hey Ada!</p>' in named.html
    assert "Hey there!</p>" in anonymous.html


def test_day0_subject_preview_cta_and_footer(catalog: TemplateCatalog) -> None:
    email = render(catalog, "welcome-series/day0", first_name="Ada")

    assert email.subject == "Your Email Marketing Playbook is ready! 📥"
    assert email.preview == (
        "Your download is inside, plus the 3-step plan to actually use it (most people don't)."
    )
    # HTML: the CTA is a real link, the preview is the hidden preheader, the footer
    # carries the physical address (CAN-SPAM).
    assert f'<a href="https://northwind.example/playbook?{HTML_UTM}"' in email.html
    assert ">Download your Email Marketing Playbook here</a>" in email.html
    assert (
        ">Your download is inside, plus the 3-step plan to actually use it "
        "(most people don&#39;t).</span>"
    ) in email.html
    assert (
        "Northwind Studio · Northwind Studio, 500 Harbor Street, Suite 12, Portland, OR 97204, USA"
    ) in email.html
    assert f"<title>{email.subject}</title>" in email.html
    # Text: the same CTA and footer, readable without HTML.
    assert (
        "👉 Download your Email Marketing Playbook here: https://northwind.example/playbook"
        in email.text
    )
    assert email.text.rstrip().endswith(
        f"You are receiving this because you signed up at https://northwind.example?{UTM}.\n"
        "Unsubscribe: https://journeys.example/u/token123"
    )
    assert '<a href="https://journeys.example/u/token123"' in email.html
    assert "500 Harbor Street, Suite 12, Portland, OR 97204, USA" in email.text


def test_every_real_template_renders_brand_values(catalog: TemplateCatalog) -> None:
    for name in catalog.names:
        email = render(catalog, name, first_name="Ada", company="Acme")
        assert email.subject, name
        assert "{{" not in email.text and "{%" not in email.text, name
        assert "Northwind Studio" in email.text, name
        assert "500 Harbor Street" in email.html, name


def test_unknown_template_name_lists_the_known_ones(catalog: TemplateCatalog) -> None:
    with pytest.raises(TemplateError) as raised:
        render(catalog, "welcome-series/day3")

    message = str(raised.value)
    assert "'welcome-series/day3'" in message
    assert "welcome-series/day0, welcome-series/day0@b, welcome-series/day1" in message
    assert "welcome-series/day7" in message


# --- contact data is data, never Liquid -----------------------------------------------


@pytest.mark.parametrize(
    ("first_name", "in_html"),
    [
        ("{{ brand.sender_email }}", "{{ brand.sender_email }}"),
        ("{% include 'x' %}", "{% include &#39;x&#39; %}"),
    ],
)
def test_liquid_in_contact_data_is_not_evaluated(
    catalog: TemplateCatalog, first_name: str, in_html: str
) -> None:
    email = render(catalog, "welcome-series/day0", first_name=first_name)

    assert email.text.startswith(f"Hey {first_name}!\n")
    assert f"Hey {in_html}!</p>" in email.html
    # The sender address only appears if the contact's input was evaluated.
    assert "maya@northwind.example" not in email.text
    assert "maya@northwind.example" not in email.html


def test_html_in_contact_data_is_escaped_in_html_only(catalog: TemplateCatalog) -> None:
    email = render(catalog, "welcome-series/day0", first_name="<script>alert(1)</script>")

    assert "Hey &lt;script&gt;alert(1)&lt;/script&gt;!</p>" in email.html
    assert "<script>" not in email.html
    assert email.text.startswith("Hey <script>alert(1)</script>!\n")


# --- a temporary catalogue: conditionals and broken templates -------------------------


def test_if_on_a_missing_contact_field_takes_the_else_branch(template_dir: Path) -> None:
    write_message(
        template_dir,
        "j/m",
        opening="{% if company %}Your team at {{ company }}{% else %}Your team{% endif %} awaits.",
    )
    catalog = TemplateCatalog(template_dir)

    assert catalog.names == ["j/m"]
    assert render(catalog, "j/m").text.startswith("Your team awaits.\n")
    assert render(catalog, "j/m", company=None).text.startswith("Your team awaits.\n")
    assert render(catalog, "j/m", company="Acme").text.startswith("Your team at Acme awaits.\n")


def test_a_valid_temporary_message_renders_all_fields(template_dir: Path) -> None:
    write_message(template_dir, "j/m")
    email = render(TemplateCatalog(template_dir), "j/m", first_name="Grace")

    assert email.subject == "Hello from Northwind Studio"
    assert email.preview == "A short preview"
    assert email.text.startswith("Hi Grace!\n")
    assert f"👉 Read more: https://northwind.example/more?{UTM}" in email.text
    assert "Bye,\nMaya" in email.text
    assert f'<a href="https://northwind.example/more?{HTML_UTM}"' in email.html
    assert "Bye,<br />\nMaya</p>" in email.html


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"opening": "Hi {{ first_name }}!"}, "'first_name' is undefined", id="no-fallback"
        ),
        pytest.param(
            {"closing": "{{ company }}"}, "'company' is undefined", id="no-fallback-company"
        ),
        pytest.param(
            {"subject": "{{ brand.nope }}"}, "brand.nope is undefined", id="unknown-brand"
        ),
        pytest.param({"opening": "{% if %}x{% endif %}"}, "missing expression", id="broken-tag"),
        pytest.param({"cta_url": None}, "missing text fields ['cta_url']", id="missing-field"),
        pytest.param({"footer": "x"}, "unknown fields ['footer']", id="extra-field"),
    ],
)
def test_broken_message_is_refused_at_load_naming_the_file(
    template_dir: Path, overrides: dict[str, str | None], expected: str
) -> None:
    write_message(template_dir, "welcome-series/day0")
    broken = write_message(template_dir, "welcome-series/day1", **overrides)

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)

    message = str(raised.value)
    assert message.startswith(f"{broken}: ")
    assert expected in message


def test_invalid_toml_is_refused_naming_the_file(template_dir: Path) -> None:
    broken = template_dir / "welcome-series" / "day0.toml"
    broken.parent.mkdir()
    broken.write_text('subject = "unterminated\n', encoding="utf-8")

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)

    assert str(raised.value).startswith(f"{broken}: ")


def test_non_string_field_is_refused_naming_the_file(template_dir: Path) -> None:
    path = write_message(template_dir, "j/m", subject=None)
    path.write_text("subject = 3\n" + path.read_text(encoding="utf-8"), encoding="utf-8")

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)

    assert str(raised.value).startswith(f"{path}: missing text fields ['subject']")


def test_missing_brand_file_is_refused_naming_it(template_dir: Path) -> None:
    (template_dir / "brand.toml").unlink()

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)

    assert str(raised.value).startswith(f"{template_dir / 'brand.toml'}: ")


def test_broken_layout_is_refused_naming_it(template_dir: Path) -> None:
    layout = template_dir / "layouts" / "email.html.liquid"
    layout.write_text("{% for x in %}{% endfor %}", encoding="utf-8")

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)

    assert str(raised.value).startswith(f"{layout}: ")


def test_every_link_gets_utm_parameters_and_existing_query_is_kept(template_dir: Path) -> None:
    (template_dir / "j").mkdir()
    (template_dir / "j" / "m.toml").write_text(
        'subject = "s"\npreview = "p"\ncta_label = "Go"\n'
        'cta_url = "https://shop.example/cart?utm_source=partner&item=7"\n'
        'opening = "See https://docs.example/guide. Or (https://docs.example/faq)."\n'
        'closing = ""\n'
    )
    email = render(TemplateCatalog(template_dir), "j/m")

    assert f"https://docs.example/guide?{UTM}. Or" in email.text
    assert f"(https://docs.example/faq?{UTM})." in email.text
    # A parameter the link already has wins; the others are added.
    assert (
        "https://shop.example/cart?utm_source=partner&utm_campaign=welcome-series"
        "&utm_content=day0&item=7" in email.text
    )
    assert "https://journeys.example/u/token123\n" in email.text + "\n"
    assert "token123?" not in email.text


def test_dynamic_block_by_tag(template_dir: Path) -> None:
    (template_dir / "j").mkdir()
    (template_dir / "j" / "m.toml").write_text(
        'subject = "s"\npreview = "p"\ncta_label = "Go"\ncta_url = "https://x.example"\n'
        "opening = \"{% if tags contains 'int_product_course' %}Course news{% else %}News"
        '{% endif %}"\nclosing = ""\n'
    )
    catalog = TemplateCatalog(template_dir)

    assert render(catalog, "j/m", tags=("int_product_course",)).text.startswith("Course news")
    assert render(catalog, "j/m", tags=("src_webinar",)).text.startswith("News")


def test_sms_template_renders_short_copy_with_opt_out(template_dir: Path) -> None:
    (template_dir / "j").mkdir()
    (template_dir / "j" / "nudge.sms.toml").write_text(
        "body = \"Hey {{ first_name | default: 'there' }}! Questions? {{ brand.book_call_url }}\"\n"
    )
    catalog = TemplateCatalog(template_dir)

    sms = catalog.render_sms("j/nudge", ContactFields(first_name="Ada"), LINKS)

    assert sms == (
        f"Hey Ada! Questions? https://northwind.example/book-a-call?{UTM} Reply STOP to opt out."
    )
    assert catalog.sms_names == ["j/nudge"]
    with pytest.raises(TemplateError, match="unknown SMS template"):
        catalog.render_sms("j/other", ContactFields(), LINKS)


def test_sms_template_without_fallback_is_refused_at_load(template_dir: Path) -> None:
    (template_dir / "j").mkdir()
    broken = template_dir / "j" / "nudge.sms.toml"
    broken.write_text('body = "Hey {{ first_name }}!"\n')

    with pytest.raises(TemplateError) as raised:
        TemplateCatalog(template_dir)
    assert str(raised.value).startswith(str(broken))
