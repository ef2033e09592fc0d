#!/usr/bin/env python3
"""Renders chat templates with Jinja2 the way Hugging Face transformers does (sandboxed,
trim_blocks and lstrip_blocks, raise_exception), for tests/runtime/chat_template_test.cpp.

stdin: {"cases": [{"template": TEXT, "messages": [{"role", "content"}], "add_generation_prompt": BOOL,
                   "bos_token": STR, "eos_token": STR}]}
stdout: [{"text": STR} | {"error": STR}] in case order.
"""
import json
import sys

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise TemplateError(message)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    results = []
    for case in json.load(sys.stdin)["cases"]:
        try:
            template = env.from_string(case["template"])
            text = template.render(messages=case["messages"], add_generation_prompt=case["add_generation_prompt"],
                                   bos_token=case["bos_token"], eos_token=case["eos_token"])
            results.append({"text": text})
        except TemplateError as e:
            results.append({"error": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
