import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isNoModelError } from '../../src/common/format';

describe('isNoModelError', () => {
    test("recognises the server's no-model refusals, which offer the local model and Set API Key", () => {
        assert.ok(isNoModelError("No model is configured: set OPENAI_API_KEY (or OPENAI_BASE_URL ...), or install the embedded model"));
        assert.ok(isNoModelError('The embedded model is not installed (llama-cpp-python is not installed). No model is configured: ...'));
    });
    test('leaves other failures to the plain error toast', () => {
        assert.ok(!isNoModelError('Cannot reach the model server at OpenAI: check the base URL and that it runs.'));
        assert.ok(!isNoModelError(undefined));
    });
});
