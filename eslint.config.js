// ESLint for Kuvert (`npm run lint`, run by CI after the type check). Type-aware rules where they
// catch defects this codebase can have (promises nobody awaits, promises handed to callbacks that
// ignore them); the type checker (strict tsconfig) already covers the rest of typing.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: ["**/node_modules/", "web/console/dist/", "tools/", "deploy/", "**/*.d.ts"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.tsx"],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits or catches loses its error (an unhandled rejection ends the process).
      // node:test's test() and describe() return promises the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        { allowForKnownSafeCalls: [{ from: "package", package: "node:test", name: ["test", "it", "describe", "suite", "before", "after", "beforeEach", "afterEach"] }] },
      ],
      // An async callback where the caller expects void (event emitters, forEach, express 4-style
      // handlers) has its rejection dropped. Express 5 awaits route handlers, so those are fine.
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false, attributes: false } }],
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none", ignoreRestSiblings: true }],
      // Logs go through the named loggers; the console belongs to the command line (below).
      "no-console": "error",
      // Left off, as they fight the house style rather than catch defects:
      // - rejecting control characters (/[\x00-\x1f]/) in names, subjects and headers is the point of those checks;
      "no-control-regex": "off",
      // - `\-` in a character class says "a literal hyphen" to the reader, wherever it stands;
      "no-useless-escape": "off",
      // - `let x = fallback; try { x = ... } catch { x = ... }` states the fallback where x is declared;
      "no-useless-assignment": "off",
      // - expected output is matched against aligned columns, whose spaces are written as they appear.
      "no-regex-spaces": "off",
    },
  },
  {
    files: ["**/*.js", "**/*.cjs"],
    languageOptions: { globals: { ...globals.node } },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // The command line, the scripts, the benchmarks and the tests speak to a person on the terminal.
    files: ["bin/**", "scripts/**", "bench/**", "test/**", "appservice/cli.ts", "appservice/**/cli.ts"],
    rules: { "no-console": "off" },
  },
  {
    files: ["web/console/src/**"],
    languageOptions: { globals: { ...globals.browser } },
  },
);
