// Initial passwords: random (crypto), meeting the configured policy, easy to type from paper.
import { randomInt } from "node:crypto";
import type { KuvertConfig } from "../config/schema.ts";

export type PasswordPolicy = KuvertConfig["accounts"]["password"];

// Characters easily mistaken in print (0 O o, 1 l I, 5 S, 2 Z, 8 B) are left out.
export const passwordClasses = {
  lowercase: "abcdefghijkmnpqrstuvwxyz",
  uppercase: "ACDEFGHJKLMNPQRTUVWXY",
  digits: "345679",
  symbols: "-+=!?#%*",
} as const;

/** A random password with at least one character of every class the policy switches on. */
export function generatePassword(policy: PasswordPolicy): string {
  const classes = (Object.keys(passwordClasses) as (keyof typeof passwordClasses)[]).filter((k) => policy[k]).map((k) => passwordClasses[k]);
  const pool = classes.length > 0 ? classes.join("") : passwordClasses.lowercase + passwordClasses.uppercase + passwordClasses.digits;
  const chars = classes.map((c) => c[randomInt(c.length)]!);
  while (chars.length < policy.length) chars.push(pool[randomInt(pool.length)]!);
  // Fisher–Yates, so the guaranteed characters are not always in front.
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join("");
}

/** Whether a password meets the policy (for tests and checks). */
export function meetsPolicy(password: string, policy: PasswordPolicy): boolean {
  if (password.length < policy.length) return false;
  return (Object.keys(passwordClasses) as (keyof typeof passwordClasses)[]).every((k) => !policy[k] || [...passwordClasses[k]].some((c) => password.includes(c)));
}
