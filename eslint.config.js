// Lint: eslint's and typescript-eslint's recommended rules, the type-aware ones included, over
// src/, test/, bench/ and scripts/; plus the size limits that keep modules small.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NODE_GLOBALS = { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', fetch: 'readonly', performance: 'readonly', TextDecoder: 'readonly', Response: 'readonly', RequestInit: 'readonly', NodeJS: 'readonly' };

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: NODE_GLOBALS,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A `let` read by a callback before its one assignment (a logger bound once it exists).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // An async function without await still turns a throw into a rejection: intended here.
      '@typescript-eslint/require-await': 'off',
      // A stream's or a child's error is rethrown as it came, whatever it is.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // node:test's describe/it/test return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', {
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }],
      }],
    },
  },
  {
    // Small modules with one job: a file over 400 lines or a function over 60 wants splitting.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 400 }],
      'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true }],
    },
  },
  // Plain JavaScript (this file, scripts/*.mjs) has no type information to lint with.
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  // The file manager's script runs in the browser.
  {
    files: ['src/gateway/web/assets/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: { document: 'readonly', location: 'readonly', fetch: 'readonly', DOMParser: 'readonly', XMLHttpRequest: 'readonly', confirm: 'readonly', prompt: 'readonly' },
    },
  },
);
