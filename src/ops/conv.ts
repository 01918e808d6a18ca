/** Conv (in progress). */
export {};
