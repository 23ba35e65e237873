"""Node parameters: one declaration, and the files and rules derived from it."""

from pathlib import Path

import pytest
import yaml

from rcdepth_ros.ros import params
from rcdepth_ros.ros.params import PARAM_SPECS, SPECS_BY_NAME, config_from_dict, refusal

REPO = Path(__file__).resolve().parents[1]


def _flatten(tree, prefix=''):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def test_shipped_yaml_and_docs_table_are_printed_from_the_declaration():
    shipped = (REPO / 'config' / 'rcdepth.yaml').read_text()
    assert shipped == params.params_yaml(), 'regenerate: rcdepth params --yaml'
    doc = (REPO / 'docs' / 'ARCHITECTURE.md').read_text()
    start = doc.index('<!-- params table: rcdepth params --markdown -->\n')
    table = doc[doc.index('\n', start) + 1:doc.index('<!-- end params table -->')]
    assert table == params.params_markdown(), 'regenerate: rcdepth params --markdown'


def test_shipped_yaml_holds_every_set_parameter_with_its_value():
    # Independent of the renderer: parse the file as rclpy would and compare values.
    values = _flatten(yaml.safe_load(params.params_yaml())['/**']['ros__parameters'])
    expected = {s.name: params.SHIPPED_OVERRIDES.get(s.name, s.default) for s in PARAM_SPECS
                if s.default is not None}
    assert values == expected
    config = config_from_dict(values)
    assert config.image_type == 'compressed' and config.radar_topics == ('/RADAR_FRONT',)
    assert config.radar_invalid_states == () and config.radar_window == 0.1


def test_defaults_come_from_the_specs_only():
    config = config_from_dict({})
    for spec in PARAM_SPECS:
        value = getattr(config, spec.attr)
        assert value == (tuple(spec.default or ()) if spec.kind.endswith('array')
                         else spec.default), spec.name
    with pytest.raises(TypeError):
        params.NodeConfig()  # no second copy of the defaults


def test_choices_and_ranges_are_checked():
    with pytest.raises(ValueError, match="image_type = 'jpeg' is not one of"):
        params.check_value(SPECS_BY_NAME['image_type'], 'jpeg')
    with pytest.raises(ValueError, match=r'radar.window = 6.0 is outside \[0.0, 5.0\]'):
        params.check_value(SPECS_BY_NAME['radar.window'], 6.0)
    params.check_value(SPECS_BY_NAME['radar.window'], 0.2)


@pytest.mark.parametrize('name, state, needs', [
    ('radar.window', 'active', None),
    ('output.points', 'active', None),
    ('min_depth', 'active', None),
    ('image_type', 'active', 'deactivate, set it, then activate'),
    ('image_type', 'inactive', None),
    ('qos.depth', 'active', 'deactivate'),
    ('model_path', 'active', 'deactivate, cleanup, set it, then configure'),
    ('precision', 'inactive', 'cleanup, set it, then configure'),
    ('model_path', 'unconfigured', None),
    ('autostart', 'unconfigured', 'restart the node'),
])
def test_refusal_names_the_transition_needed(name, state, needs):
    reason = refusal(SPECS_BY_NAME[name], state)
    if needs is None:
        assert reason is None
    else:
        assert name in reason and needs in reason


def test_every_parameter_says_when_it_takes_effect():
    assert {s.applies for s in PARAM_SPECS} <= set(params.APPLIES)
    # QoS and topics are fixed when subscribing, the model when configuring.
    for name in ('qos.reliability', 'qos.depth', 'radar_topics', 'image_type', 'odom_topic'):
        assert SPECS_BY_NAME[name].applies == params.ACTIVATE
    for name in ('model_path', 'device', 'precision', 'extrinsics.source'):
        assert SPECS_BY_NAME[name].applies == params.CONFIGURE
