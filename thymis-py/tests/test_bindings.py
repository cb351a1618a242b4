"""Tests of the thymis_py extension, run against the freshly built library by ./scripts/test."""

import json
import unittest

import thymis_py

DEVICE = "thymis_controller.modules.thymis.ThymisDevice"
CUSTOM_NIX = "thymis_controller.modules.whatever.WhateverModule"


class BindingsTest(unittest.TestCase):
    def test_available_modules_in_both_locales(self):
        english = json.loads(thymis_py.available_modules("en"))
        german = json.loads(thymis_py.available_modules("de"))
        self.assertEqual(len(english), 10)
        self.assertEqual(english[0]["type"], DEVICE)
        self.assertEqual(english[0]["displayName"], "Device")
        self.assertEqual(german[0]["displayName"], "Gerät")
        device_type = english[0]["settings"]["device_type"]["type"]
        self.assertEqual(device_type["type"], "select-one")
        self.assertIn(["Raspberry Pi 4", "raspberry-pi-4"], device_type["select-one"])

    def test_render_module_escapes_values(self):
        text = thymis_py.render_module(DEVICE, json.dumps({"device_name": 'a"${b}'}), "pi-1")
        self.assertIn('thymis.config.device-name = lib.mkOverride 80 "a\\"\\${b}";', text)

    def test_custom_nix_syntax_error_is_a_value_error_with_position(self):
        with self.assertRaises(ValueError) as caught:
            thymis_py.render_module(CUSTOM_NIX, json.dumps({"settings": "a = 1;\nb = ;"}), "pi-1")
        self.assertIn("line 2, column 5", str(caught.exception))

    def test_migrate_and_validate(self):
        old = {"version": "0.0.7", "tags": [], "devices": [
            {"displayName": "Pi", "identifier": "pi", "tags": ["missing"], "modules": [
                {"type": DEVICE, "settings": {"device_type": "raspberry-pi-4"}}]}]}
        migrated = json.loads(thymis_py.migrate_state(json.dumps(old)))
        self.assertEqual(migrated["version"], "0.0.9")
        self.assertEqual(migrated["configs"][0]["identifier"], "pi")
        problems = thymis_py.validate_state(json.dumps(old))
        self.assertIn(("error", "$.configs[0].tags[0]", "tag `missing` does not exist"), problems)

    def test_bad_input_raises_value_error(self):
        with self.assertRaises(ValueError):
            thymis_py.migrate_state("{not json")
        with self.assertRaises(ValueError):
            thymis_py.render_module("no.such.Module", "{}", "x")


if __name__ == "__main__":
    unittest.main()
