/** Kills every registered process group that still has a process; returns "pgid (what)" for each. */
export function killLeftGroups(dir: string): string[];
